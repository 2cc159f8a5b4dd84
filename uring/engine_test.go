package uring

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The tests in this file run once per engine and expect the same n, data
// and error text from both, so any difference between Ring and Syscall
// fails one of the two subtests.

func TestPreadPwriteRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		_, dfd := tempDirFD(t)
		fd := openFile(t, e, dfd, "f", unix.O_CREAT|unix.O_RDWR)

		data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
		n, err := e.Pwrite(fd, data, 100)
		if err != nil || n != len(data) {
			t.Fatalf("Pwrite = %d, %v; want %d, nil", n, err, len(data))
		}

		got := make([]byte, len(data))
		n, err = e.Pread(fd, got, 100)
		if err != nil || n != len(data) {
			t.Fatalf("Pread = %d, %v; want %d, nil", n, err, len(data))
		}
		if !bytes.Equal(got, data) {
			t.Errorf("Pread returned different bytes than Pwrite wrote")
		}

		// The 100 bytes before the write offset are a hole and read as zeros.
		head := make([]byte, 100)
		if n, err := e.Pread(fd, head, 0); n != 100 || err != nil || !bytes.Equal(head, make([]byte, 100)) {
			t.Errorf("Pread of hole = %d, %v, %q; want 100 zero bytes", n, err, head)
		}
	})
}

func TestPreadShortAtEOF(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		writeFile(t, dir, "ten", []byte("0123456789"))
		fd := openFile(t, e, dfd, "ten", unix.O_RDONLY)
		buf := make([]byte, 100)

		n, err := e.Pread(fd, buf, 0)
		if n != 10 || err != nil || string(buf[:n]) != "0123456789" {
			t.Errorf("Pread(100 bytes at 0) = %d, %v; want 10, nil", n, err)
		}
		n, err = e.Pread(fd, buf, 7)
		if n != 3 || err != nil || string(buf[:n]) != "789" {
			t.Errorf("Pread(100 bytes at 7) = %d, %v; want 3, nil", n, err)
		}
		n, err = e.Pread(fd, buf, 10)
		if n != 0 || err != nil {
			t.Errorf("Pread at EOF = %d, %v; want 0, nil", n, err)
		}
		n, err = e.Pread(fd, buf, 1<<40)
		if n != 0 || err != nil {
			t.Errorf("Pread past EOF = %d, %v; want 0, nil", n, err)
		}
		n, err = e.Pread(fd, nil, 0)
		if n != 0 || err != nil {
			t.Errorf("Pread of 0 bytes = %d, %v; want 0, nil", n, err)
		}
	})
}

func TestReadFullWriteFull(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		_, dfd := tempDirFD(t)
		fd := openFile(t, e, dfd, "f", unix.O_CREAT|unix.O_RDWR)

		n, err := WriteFull(e, fd, []byte("hello world"), 5)
		if n != 11 || err != nil {
			t.Fatalf("WriteFull = %d, %v; want 11, nil", n, err)
		}

		buf := make([]byte, 11)
		n, err = ReadFull(e, fd, buf, 5)
		if n != 11 || err != nil || string(buf) != "hello world" {
			t.Errorf("ReadFull = %d, %v, %q; want 11, nil, hello world", n, err, buf)
		}

		n, err = ReadFull(e, fd, make([]byte, 20), 10)
		if n != 6 || err != io.ErrUnexpectedEOF {
			t.Errorf("ReadFull across EOF = %d, %v; want 6, io.ErrUnexpectedEOF", n, err)
		}
		n, err = ReadFull(e, fd, make([]byte, 20), 16)
		if n != 0 || err != io.EOF {
			t.Errorf("ReadFull at EOF = %d, %v; want 0, io.EOF", n, err)
		}
		n, err = WriteFull(e, fd, nil, 0)
		if n != 0 || err != nil {
			t.Errorf("WriteFull of nothing = %d, %v; want 0, nil", n, err)
		}
	})
}

func TestReadWriteErrors(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		writeFile(t, dir, "ro", []byte("x"))
		ro := openFile(t, e, dfd, "ro", unix.O_RDONLY)
		dirFile := openFile(t, e, dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY)
		buf := make([]byte, 8)

		_, err := e.Pread(-1, buf, 0)
		checkOpError(t, err, "pread: bad file descriptor", unix.EBADF)
		_, err = e.Pwrite(ro, buf, 0)
		checkOpError(t, err, "pwrite: bad file descriptor", unix.EBADF)
		_, err = e.Pread(dirFile, buf, 0)
		checkOpError(t, err, "pread: is a directory", unix.EISDIR)
		n, err := e.Pread(ro, buf, -1)
		checkOpError(t, err, "pread: invalid argument", unix.EINVAL)
		if n != 0 {
			t.Errorf("Pread with negative offset returned n = %d, want 0", n)
		}
		_, err = e.Pwrite(ro, buf, -5)
		checkOpError(t, err, "pwrite: invalid argument", unix.EINVAL)
	})
}

// Pread on a pipe is the one documented difference between the engines:
// io_uring ignores the offset of a stream fd and reads like read(2).
func TestPreadOnPipeDiffers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		r, w := pipe(t)
		if _, err := unix.Write(w, []byte("abc")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		n, err := e.Pread(r, buf, 0)
		switch e.Name() {
		case "syscall":
			checkOpError(t, err, "pread: illegal seek", unix.ESPIPE)
		case "io_uring":
			if n != 3 || err != nil || string(buf[:n]) != "abc" {
				t.Errorf("Pread on a pipe = %d, %v, %q; want 3, nil, abc", n, err, buf[:n])
			}
		}
	})
}

func TestOpenatResults(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		writeFile(t, dir, "file", []byte("abc"))

		fd := openFile(t, e, dfd, "file", unix.O_RDONLY)
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd flags = %#x, %v; want FD_CLOEXEC set", flags, err)
		}

		fd2, err := e.Openat(unix.AT_FDCWD, filepath.Join(dir, "new"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		if err != nil {
			t.Fatalf("Openat with O_CREAT|O_EXCL: %v", err)
		}
		if err := e.CloseFD(fd2); err != nil {
			t.Errorf("CloseFD: %v", err)
		}
		info, err := os.Stat(filepath.Join(dir, "new"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("created file: %v, %v; want mode 0600", info, err)
		}

		_, err = e.Openat(dfd, "missing", unix.O_RDONLY, 0)
		checkOpError(t, err, "openat missing: no such file or directory", unix.ENOENT)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
		}
		fd3, err := e.Openat(dfd, "file", unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o644)
		checkOpError(t, err, "openat file: file exists", unix.EEXIST)
		if fd3 != -1 {
			t.Errorf("failed Openat returned fd %d, want -1", fd3)
		}
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("errors.Is(%v, fs.ErrExist) = false", err)
		}
		_, err = e.Openat(dfd, "file/child", unix.O_RDONLY, 0)
		checkOpError(t, err, "openat file/child: not a directory", unix.ENOTDIR)
		_, err = e.Openat(dfd, ".", unix.O_WRONLY, 0)
		checkOpError(t, err, "openat .: is a directory", unix.EISDIR)
		_, err = e.Openat(dfd, "bad\x00name", unix.O_RDONLY, 0)
		checkOpError(t, err, "openat bad\x00name: invalid argument", unix.EINVAL)
		_, err = e.Openat(-1, "relative", unix.O_RDONLY, 0)
		checkOpError(t, err, "openat relative: bad file descriptor", unix.EBADF)
	})
}

func TestCloseFDTwice(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		_, dfd := tempDirFD(t)
		fd, err := e.Openat(dfd, "f", unix.O_CREAT|unix.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.CloseFD(fd); err != nil {
			t.Fatalf("first CloseFD: %v", err)
		}
		checkOpError(t, e.CloseFD(fd), "close: bad file descriptor", unix.EBADF)
	})
}

func TestFsync(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		_, dfd := tempDirFD(t)
		fd := openFile(t, e, dfd, "f", unix.O_CREAT|unix.O_RDWR)
		if _, err := e.Pwrite(fd, []byte("data"), 0); err != nil {
			t.Fatal(err)
		}
		if err := e.Fsync(fd, false); err != nil {
			t.Errorf("Fsync: %v", err)
		}
		if err := e.Fsync(fd, true); err != nil {
			t.Errorf("Fsync(datasync): %v", err)
		}
		checkOpError(t, e.Fsync(-1, false), "fsync: bad file descriptor", unix.EBADF)
		checkOpError(t, e.Fsync(-1, true), "fdatasync: bad file descriptor", unix.EBADF)
	})
}

func TestStatx(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		writeFile(t, dir, "file", []byte("12345"))
		if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}

		var st unix.Statx_t
		if err := e.Statx(dfd, "file", 0, unix.STATX_BASIC_STATS, &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != 5 || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
			t.Errorf("statx file: size %d, mode %o, nlink %d; want 5, regular, 1", st.Size, st.Mode, st.Nlink)
		}
		var want unix.Statx_t
		if err := unix.Statx(dfd, "file", 0, unix.STATX_BASIC_STATS, &want); err != nil {
			t.Fatal(err)
		}
		if st.Ino != want.Ino || st.Mtime != want.Mtime || st.Mask != want.Mask {
			t.Errorf("statx file: ino %d mtime %v mask %#x; statx(2) gives %d %v %#x",
				st.Ino, st.Mtime, st.Mask, want.Ino, want.Mtime, want.Mask)
		}

		if err := e.Statx(dfd, "link", unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("statx link with AT_SYMLINK_NOFOLLOW: mode %o, want a symlink", st.Mode)
		}
		if err := e.Statx(dfd, "", unix.AT_EMPTY_PATH, unix.STATX_TYPE, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("statx of dirfd with AT_EMPTY_PATH: mode %o, want a directory", st.Mode)
		}

		checkOpError(t, e.Statx(dfd, "missing", 0, unix.STATX_ALL, &st),
			"statx missing: no such file or directory", unix.ENOENT)
		checkOpError(t, e.Statx(dfd, "file/x", 0, unix.STATX_ALL, &st),
			"statx file/x: not a directory", unix.ENOTDIR)
		checkOpError(t, e.Statx(dfd, "a\x00b", 0, unix.STATX_ALL, &st),
			"statx a\x00b: invalid argument", unix.EINVAL)
		checkOpError(t, e.Statx(dfd, "file", unix.AT_REMOVEDIR, unix.STATX_ALL, &st),
			"statx file: invalid argument", unix.EINVAL)
	})
}

func TestMkdiratUnlinkat(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		writeFile(t, dir, "file", nil)

		if err := e.Mkdirat(dfd, "d", 0o750); err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(filepath.Join(dir, "d"))
		if err != nil || !info.IsDir() {
			t.Fatalf("Mkdirat made %v, %v; want a directory", info, err)
		}
		checkOpError(t, e.Mkdirat(dfd, "d", 0o750), "mkdirat d: file exists", unix.EEXIST)
		checkOpError(t, e.Mkdirat(dfd, "nope/d", 0o750), "mkdirat nope/d: no such file or directory", unix.ENOENT)
		checkOpError(t, e.Mkdirat(dfd, "file/d", 0o750), "mkdirat file/d: not a directory", unix.ENOTDIR)

		writeFile(t, dir, "d/inner", nil)
		checkOpError(t, e.Unlinkat(dfd, "d", 0), "unlinkat d: is a directory", unix.EISDIR)
		checkOpError(t, e.Unlinkat(dfd, "d", unix.AT_REMOVEDIR), "unlinkat d: directory not empty", unix.ENOTEMPTY)
		checkOpError(t, e.Unlinkat(dfd, "file", unix.AT_REMOVEDIR), "unlinkat file: not a directory", unix.ENOTDIR)
		checkOpError(t, e.Unlinkat(dfd, "missing", 0), "unlinkat missing: no such file or directory", unix.ENOENT)
		checkOpError(t, e.Unlinkat(dfd, "file", 0x1), "unlinkat file: invalid argument", unix.EINVAL)

		if err := e.Unlinkat(dfd, "d/inner", 0); err != nil {
			t.Errorf("Unlinkat file: %v", err)
		}
		if err := e.Unlinkat(dfd, "d", unix.AT_REMOVEDIR); err != nil {
			t.Errorf("Unlinkat empty directory: %v", err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "d")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("directory still exists after Unlinkat: %v", err)
		}
	})
}

func TestRenameat(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		writeFile(t, dir, "a", []byte("A"))
		writeFile(t, dir, "b", []byte("B"))
		sub := filepath.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		subfd := openDir(t, sub)

		checkOpError(t, e.Renameat(dfd, "a", dfd, "b", unix.RENAME_NOREPLACE),
			"renameat2 a b: file exists", unix.EEXIST)
		checkOpError(t, e.Renameat(dfd, "missing", dfd, "c", 0),
			"renameat2 missing c: no such file or directory", unix.ENOENT)
		checkOpError(t, e.Renameat(dfd, "a", dfd, "a/x", 0),
			"renameat2 a a/x: not a directory", unix.ENOTDIR)

		if err := e.Renameat(dfd, "a", dfd, "b", unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("Renameat with RENAME_EXCHANGE: %v", err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "a")); string(got) != "B" {
			t.Errorf("after exchange a contains %q, want B", got)
		}

		if err := e.Renameat(dfd, "a", subfd, "moved", unix.RENAME_NOREPLACE); err != nil {
			t.Fatalf("Renameat into another dirfd: %v", err)
		}
		if got, _ := os.ReadFile(filepath.Join(sub, "moved")); string(got) != "B" {
			t.Errorf("moved file contains %q, want B", got)
		}
		if err := e.Renameat(dfd, "b", dfd, "c", 0); err != nil {
			t.Fatalf("plain Renameat: %v", err)
		}
	})
}

func TestRenameatAcrossFilesystems(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		writeFile(t, dir, "f", []byte("x"))
		mnt := mountTmpfs(t, "1m")
		mntfd := openDir(t, mnt)

		err := e.Renameat(dfd, "f", mntfd, "f", 0)
		checkOpError(t, err, "renameat2 f f: invalid cross-device link", unix.EXDEV)
	})
}

func TestWriteUntilENOSPC(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		mnt := mountTmpfs(t, "1m")
		mntfd := openDir(t, mnt)
		fd := openFile(t, e, mntfd, "big", unix.O_CREAT|unix.O_WRONLY)

		chunk := bytes.Repeat([]byte{0xab}, 64<<10)
		var total int64
		var err error
		for i := 0; i < 64 && err == nil; i++ {
			var n int
			n, err = WriteFull(e, fd, chunk, total)
			total += int64(n)
		}
		checkOpError(t, err, "pwrite: no space left on device", unix.ENOSPC)
		// The tmpfs holds 1 MiB; the file must have filled most of it.
		if total <= 512<<10 || total > 1<<20 {
			t.Errorf("wrote %d bytes before ENOSPC, want between 512 KiB and 1 MiB", total)
		}

		// A single Pwrite on the full file system fails with n == 0.
		n, err := e.Pwrite(fd, chunk, total)
		checkOpError(t, err, "pwrite: no space left on device", unix.ENOSPC)
		if n != 0 {
			t.Errorf("Pwrite on a full file system returned n = %d, want 0", n)
		}
	})
}

func TestSplicePipeAndFile(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		data := bytes.Repeat([]byte("splice!"), 1000)
		writeFile(t, dir, "src", data)
		src := openFile(t, e, dfd, "src", unix.O_RDONLY)
		dst := openFile(t, e, dfd, "dst", unix.O_CREAT|unix.O_WRONLY)
		pr, pw := pipe(t)

		// file -> pipe, with an input offset that Splice advances.
		roff := int64(7)
		n, err := e.Splice(src, &roff, pw, nil, 4096, 0)
		if n != 4096 || err != nil || roff != 7+4096 {
			t.Fatalf("Splice file->pipe = %d, %v, roff %d; want 4096, nil, %d", n, err, roff, 7+4096)
		}

		// pipe -> file, with an output offset.
		woff := int64(10)
		n, err = e.Splice(pr, nil, dst, &woff, 8192, 0)
		if n != 4096 || err != nil || woff != 10+4096 {
			t.Fatalf("Splice pipe->file = %d, %v, woff %d; want 4096, nil, %d", n, err, woff, 10+4096)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "dst"))
		if !bytes.Equal(got[10:], data[7:7+4096]) {
			t.Errorf("spliced bytes differ from the source")
		}

		// At end of input, splice returns 0.
		end := int64(len(data))
		n, err = e.Splice(src, &end, pw, nil, 100, 0)
		if n != 0 || err != nil {
			t.Errorf("Splice at EOF = %d, %v; want 0, nil", n, err)
		}

		// An empty pipe with SPLICE_F_NONBLOCK returns EAGAIN instead of
		// waiting.
		_, err = e.Splice(pr, nil, dst, nil, 100, unix.SPLICE_F_NONBLOCK)
		checkOpError(t, err, "splice: resource temporarily unavailable", unix.EAGAIN)

		// Neither fd is a pipe.
		_, err = e.Splice(src, nil, dst, nil, 100, 0)
		checkOpError(t, err, "splice: invalid argument", unix.EINVAL)
		// A pipe has no offset.
		off := int64(0)
		_, err = e.Splice(pr, &off, dst, nil, 100, 0)
		checkOpError(t, err, "splice: illegal seek", unix.ESPIPE)
	})
}

func TestSpliceLoopbackSocket(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		server, client := tcpPair(t)
		dir, dfd := tempDirFD(t)
		dst := openFile(t, e, dfd, "upload", unix.O_CREAT|unix.O_WRONLY)
		pr, pw := pipe(t)

		payload := bytes.Repeat([]byte("upload-bytes "), 5000) // 65,000 bytes
		go func() {
			_, _ = unix.Write(client, payload)
			_ = unix.Shutdown(client, unix.SHUT_WR)
		}()

		// socket -> pipe -> file until the client's end of stream. The
		// sockets are blocking, so each splice waits for data.
		var woff int64
		for {
			n, err := e.Splice(server, nil, pw, nil, 16384, 0)
			if err != nil {
				t.Fatalf("Splice socket->pipe: %v", err)
			}
			if n == 0 {
				break
			}
			for left := n; left > 0; {
				m, err := e.Splice(pr, nil, dst, &woff, int(left), 0)
				if err != nil {
					t.Fatalf("Splice pipe->file: %v", err)
				}
				left -= m
			}
		}
		got, err := os.ReadFile(filepath.Join(dir, "upload"))
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("uploaded file has %d bytes (err %v), want the %d sent bytes", len(got), err, len(payload))
		}
	})
}

// tcpPair returns two connected blocking TCP sockets on 127.0.0.1, made
// with raw system calls so that Go's netpoller does not set O_NONBLOCK.
func tcpPair(t *testing.T) (server, client int) {
	t.Helper()
	socket := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Close(fd) })
		return fd
	}

	ln := socket()
	loopback := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(ln, loopback); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		t.Fatal(err)
	}
	addr, err := unix.Getsockname(ln)
	if err != nil {
		t.Fatal(err)
	}

	client = socket()
	if err := unix.Connect(client, addr); err != nil {
		t.Fatal(err)
	}
	server, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(server) })
	return server, client
}

func TestStatxBatch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		var names []string
		for i := range 200 {
			name := "f" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa3(i)
			names = append(names, name)
			if i%5 != 0 {
				writeFile(t, dir, name, make([]byte, i))
			}
		}
		names = append(names, "bad\x00name", ".", "missing/x")

		out := make([]unix.Statx_t, len(names))
		errs := make([]error, len(names))
		if err := e.StatxBatch(dfd, names, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, out, errs); err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			if i%5 == 0 {
				checkOpError(t, errs[i], "statx "+names[i]+": no such file or directory", unix.ENOENT)
				continue
			}
			if errs[i] != nil || out[i].Size != uint64(i) {
				t.Errorf("entry %d (%s): size %d, err %v; want %d, nil", i, names[i], out[i].Size, errs[i], i)
			}
		}
		checkOpError(t, errs[200], "statx bad\x00name: invalid argument", unix.EINVAL)
		if errs[201] != nil || out[201].Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("entry \".\": mode %o, err %v; want a directory", out[201].Mode, errs[201])
		}
		checkOpError(t, errs[202], "statx missing/x: no such file or directory", unix.ENOENT)

		// Empty batches do nothing; short output slices are rejected.
		if err := e.StatxBatch(dfd, nil, 0, 0, nil, nil); err != nil {
			t.Errorf("empty StatxBatch: %v", err)
		}
		if err := e.StatxBatch(dfd, names, 0, 0, out[:3], errs); err == nil {
			t.Errorf("StatxBatch with a short out slice returned nil")
		}
	})
}

func TestUnlinkatBatch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir, dfd := tempDirFD(t)
		var names []string
		for i := range 150 {
			name := "u" + itoa3(i)
			names = append(names, name)
			if i%4 != 0 {
				writeFile(t, dir, name, nil)
			}
		}
		if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		names = append(names, "sub")

		errs := make([]error, len(names))
		if err := e.UnlinkatBatch(dfd, names, 0, errs); err != nil {
			t.Fatal(err)
		}
		for i := range 150 {
			if i%4 == 0 {
				checkOpError(t, errs[i], "unlinkat "+names[i]+": no such file or directory", unix.ENOENT)
			} else if errs[i] != nil {
				t.Errorf("entry %d: %v", i, errs[i])
			}
		}
		checkOpError(t, errs[150], "unlinkat sub: is a directory", unix.EISDIR)

		left, err := os.ReadDir(dir)
		if err != nil || len(left) != 1 || left[0].Name() != "sub" {
			t.Errorf("directory after UnlinkatBatch: %v, %v; want only sub", left, err)
		}

		// AT_REMOVEDIR removes the directory.
		if err := e.UnlinkatBatch(dfd, []string{"sub"}, unix.AT_REMOVEDIR, errs[:1]); err != nil || errs[0] != nil {
			t.Errorf("UnlinkatBatch(AT_REMOVEDIR) = %v, %v", err, errs[0])
		}
		if err := e.UnlinkatBatch(dfd, names, 0, errs[:2]); err == nil {
			t.Errorf("UnlinkatBatch with a short errs slice returned nil")
		}
	})
}

func TestCallsAfterClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		_, dfd := tempDirFD(t)
		if err := e.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := e.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}

		var st unix.Statx_t
		buf := make([]byte, 4)
		_, err := e.Pread(0, buf, 0)
		checkOpError(t, err, "pread: uring: engine closed", ErrClosed)
		_, err = e.Pwrite(0, buf, 0)
		checkOpError(t, err, "pwrite: uring: engine closed", ErrClosed)
		checkOpError(t, e.Fsync(0, true), "fdatasync: uring: engine closed", ErrClosed)
		_, err = e.Openat(dfd, "x", unix.O_RDONLY, 0)
		checkOpError(t, err, "openat x: uring: engine closed", ErrClosed)
		checkOpError(t, e.CloseFD(dfd), "close: uring: engine closed", ErrClosed)
		checkOpError(t, e.Statx(dfd, "x", 0, 0, &st), "statx x: uring: engine closed", ErrClosed)
		checkOpError(t, e.Unlinkat(dfd, "x", 0), "unlinkat x: uring: engine closed", ErrClosed)
		checkOpError(t, e.Renameat(dfd, "x", dfd, "y", 0), "renameat2 x y: uring: engine closed", ErrClosed)
		checkOpError(t, e.Mkdirat(dfd, "x", 0o755), "mkdirat x: uring: engine closed", ErrClosed)
		_, err = e.Splice(0, nil, 1, nil, 1, 0)
		checkOpError(t, err, "splice: uring: engine closed", ErrClosed)
		errs := make([]error, 1)
		checkOpError(t, e.StatxBatch(dfd, []string{"x"}, 0, 0, []unix.Statx_t{st}, errs),
			"statx: uring: engine closed", ErrClosed)
		checkOpError(t, e.UnlinkatBatch(dfd, []string{"x"}, 0, errs),
			"unlinkat: uring: engine closed", ErrClosed)
	})
}

// itoa3 formats i (below 1000) as three digits.
func itoa3(i int) string {
	return string([]byte{byte('0' + i/100), byte('0' + i/10%10), byte('0' + i%10)})
}
