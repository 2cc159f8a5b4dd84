package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/cluster"
)

// startNodes starts n proxies that share one etcd member and one volume
// folder, as proxies on several hosts share an NFS volume. uploadLock is
// the upload-lock setting of every node.
func startNodes(t *testing.T, n int, uploadLock string) ([]*testProxy, *cluster.Client) {
	t.Helper()
	etcdAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	member, err := cluster.StartMember(t.TempDir(), etcdAddr, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(member.Close)
	shared := filepath.Join(t.TempDir(), "shared-volume")
	os.MkdirAll(shared, 0o755)

	var nodes []*testProxy
	for i := 0; i < n; i++ {
		p := writeConfig(t, 1, false)
		cfg, _ := os.ReadFile(p.configFile)
		text := string(cfg)
		text = strings.Replace(text, `node-id = "test-node"`, fmt.Sprintf("node-id = \"node-%d\"\nupload-lock = %q", i, uploadLock), 1)
		text = strings.Replace(text, `path = "volumes/local"`, fmt.Sprintf("path = %q", shared), 1)
		port := strings.TrimSpace(strings.Split(strings.Split(text, "port = ")[1], " ")[0])
		text = strings.Replace(text, "port = "+port+" }", "port = "+strings.Split(etcdAddr, ":")[1]+" }", 1)
		os.WriteFile(p.configFile, []byte(text), 0o644)
		p.dir = filepath.Dir(shared) // volume files live in the shared folder
		p.start(t)
		nodes = append(nodes, p)
	}
	for _, p := range nodes {
		waitStatus(t, p.clientURL+"/", 15*time.Second)
	}
	client, err := cluster.Connect(context.Background(), cluster.Options{Endpoint: etcdAddr, Namespace: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return nodes, client
}

func patch(p *testProxy, tok string, offset int64, body io.Reader, length int64) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPatch, p.clientURL+"/upload?token="+tok, body)
	req.ContentLength = length
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Upload-Offset"), nil
}

// TestSharedVolumeAcrossNodes runs three proxies on one etcd and one
// volume, once per upload-lock setting. The shared folder is local here,
// so flock(2) passes between the nodes as on a file system that supports
// it. With "etcd" the nodes take no flock at all, and etcd alone keeps the
// sessions' requests apart.
func TestSharedVolumeAcrossNodes(t *testing.T) {
	for _, uploadLock := range []string{"flock", "etcd"} {
		t.Run(uploadLock, func(t *testing.T) { testSharedVolume(t, uploadLock) })
	}
}

func testSharedVolume(t *testing.T, uploadLock string) {
	nodes, etcd := startNodes(t, 4, uploadLock)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	if status, out := managerCall(t, a, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
		t.Fatalf("create folder: %d %s", status, out)
	}
	vfolder := filepath.Join(a.dir, "shared-volume", "3e1c7c7a5f0a4c519a2d0c6a2b7f4e11", "9b", "2f", "4c1d8e7a4b6c9d0e1f2a3b4c5d6e")
	staging := filepath.Join(a.dir, "shared-volume", "3e1c7c7a5f0a4c519a2d0c6a2b7f4e11", ".upload")

	t.Run("resume on another node after a crash", func(t *testing.T) {
		// The dying PATCH carries 70 MiB, past one checkpoint: under etcd
		// a long PATCH flushes and records its offset every 64 MiB
		// (dataplane's checkpointBytes).
		const size, first, sent, checkpoint = 96 << 20, 1 << 20, 70 << 20, 64 << 20
		content := make([]byte, size)
		rand.New(rand.NewSource(2)).Read(content)
		tok := mintToken(t, a, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "moved.bin", "size": size})
		partial := filepath.Join(staging, sessionOf(t, tok))

		// One PATCH completes, so its offset is acknowledged (and, under
		// etcd, recorded); the next one dies with node A after 70 MiB more.
		if status, _, err := patch(a, tok, 0, bytes.NewReader(content[:first]), first); err != nil || status != http.StatusNoContent {
			t.Fatalf("first PATCH through node A: %d %v", status, err)
		}
		killDuringPatch(t, a, tok, partial, first, content[first:first+sent], size-first)

		var offset int64
		switch uploadLock {
		case "flock":
			// The kernel freed the dead node's flock, and the partial
			// file's size counts: the 70 MiB that reached it are kept.
			offset = headOffset(t, b, tok)
			if offset < first+sent || offset > size {
				t.Fatalf("node B reports offset %d, want at least %d", offset, first+sent)
			}
		case "etcd":
			// Once the dead node's lease ends (uploadLockTTL), the next
			// holder counts only the last recorded offset, the checkpoint,
			// and cuts the bytes past it. Until then HEAD gets 423.
			offset = headAfterLease(t, b, tok)
			if offset != first+checkpoint {
				t.Fatalf("node B reports offset %d after the crash, want the recorded %d", offset, first+checkpoint)
			}
			if fi, err := os.Stat(partial); err != nil || fi.Size() != offset {
				t.Fatalf("the partial file was not cut back to the recorded offset: %v %v", fi.Size(), err)
			}
		}
		if other := headOffset(t, c, tok); other != offset {
			t.Fatalf("node C reports offset %d, node B %d", other, offset)
		}
		status, _, err := patch(b, tok, offset, bytes.NewReader(content[offset:]), size-offset)
		if err != nil || status != http.StatusNoContent {
			t.Fatalf("resume on node B: %d %v", status, err)
		}
		got, err := os.ReadFile(filepath.Join(vfolder, "moved.bin"))
		if err != nil || sha256.Sum256(got) != sha256.Sum256(content) {
			t.Fatalf("file after the resume differs from the source (%v)", err)
		}
	})

	t.Run("a first PATCH dies before any record", func(t *testing.T) {
		const size, sent = 8 << 20, 3 << 20
		content := make([]byte, size)
		rand.New(rand.NewSource(4)).Read(content)
		tok := mintToken(t, d, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "unrecorded.bin", "size": size})
		partial := filepath.Join(staging, sessionOf(t, tok))
		killDuringPatch(t, d, tok, partial, 0, content[:sent], size)

		var offset int64
		switch uploadLock {
		case "flock":
			offset = headOffset(t, b, tok)
			if offset < sent {
				t.Fatalf("node B reports offset %d, want at least %d", offset, sent)
			}
		case "etcd":
			// No response acknowledged any byte, so none counts.
			if offset = headAfterLease(t, b, tok); offset != 0 {
				t.Fatalf("node B reports offset %d for a session without a record, want 0", offset)
			}
		}
		status, _, err := patch(c, tok, offset, bytes.NewReader(content[offset:]), size-offset)
		if err != nil || status != http.StatusNoContent {
			t.Fatalf("resume on node C: %d %v", status, err)
		}
		got, err := os.ReadFile(filepath.Join(vfolder, "unrecorded.bin"))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("file after the resume differs from the source (%v)", err)
		}
	})

	t.Run("sequential PATCHes alternate nodes", func(t *testing.T) {
		const chunk, chunks = 1 << 20, 16
		content := make([]byte, chunk*chunks)
		rand.New(rand.NewSource(3)).Read(content)
		tok := mintToken(t, b, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "alternating.bin", "size": len(content)})
		offsetKey := "volumes/upload-sessions/" + sessionOf(t, tok) + "/offset"
		for i := 0; i < chunks; i++ {
			node := []*testProxy{b, c}[i%2]
			offset := int64(i * chunk)
			status, reported, err := patch(node, tok, offset, bytes.NewReader(content[offset:offset+chunk]), chunk)
			if err != nil || status != http.StatusNoContent || reported != strconv.FormatInt(offset+chunk, 10) {
				t.Fatalf("PATCH %d through node %d: %d, offset %q, %v", i, i%2+1, status, reported, err)
			}
			// Under etcd the offset each node reports is the one it
			// recorded there first; a finished session leaves no record.
			record, found, err := etcd.Get(context.Background(), offsetKey)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case uploadLock == "flock" && found:
				t.Fatalf("upload-lock = flock wrote %s = %q", offsetKey, record)
			case uploadLock == "etcd" && i < chunks-1 && record != reported:
				t.Fatalf("after PATCH %d etcd holds offset %q (found %v), the node reported %s", i, record, found, reported)
			case uploadLock == "etcd" && i == chunks-1 && found:
				t.Fatalf("the finished session's offset record is still in etcd: %q", record)
			}
			if i < chunks-1 {
				if hb, hc := headOffset(t, b, tok), headOffset(t, c, tok); hb != offset+chunk || hc != offset+chunk {
					t.Fatalf("after PATCH %d the nodes report offsets %d and %d, want %d", i, hb, hc, offset+chunk)
				}
			}
		}
		got, err := os.ReadFile(filepath.Join(vfolder, "alternating.bin"))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("alternating upload differs from the source (%v)", err)
		}
	})

	t.Run("a flock taken outside the proxies", func(t *testing.T) {
		// Under flock it keeps every node out. Under etcd no node looks at
		// it, as on a file system whose locks do not pass between nodes.
		const size = 1 << 20
		tok := mintToken(t, b, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "outside-lock.bin", "size": size})
		f, err := os.Open(filepath.Join(staging, sessionOf(t, tok)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		status, _, err := patch(c, tok, 0, bytes.NewReader(make([]byte, size)), size)
		want := map[string]int{"flock": http.StatusLocked, "etcd": http.StatusNoContent}[uploadLock]
		if err != nil || status != want {
			t.Fatalf("PATCH with the partial file flocked outside: %d %v, want %d", status, err, want)
		}
	})

	t.Run("concurrent PATCHes through two nodes never interleave", func(t *testing.T) {
		const size = 8 << 20
		for round := 0; round < 5; round++ {
			tok := mintToken(t, b, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "race-" + strconv.Itoa(round) + ".bin", "size": size})
			one := bytes.Repeat([]byte{'b'}, size)
			two := bytes.Repeat([]byte{'c'}, size)
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			for i, node := range []*testProxy{b, c} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					data := one
					if i == 1 {
						data = two
					}
					statuses[i], _, _ = patch(node, tok, 0, bytes.NewReader(data), size)
				}()
			}
			wg.Wait()
			ok := 0
			for _, s := range statuses {
				switch s {
				case http.StatusNoContent:
					ok++
				case http.StatusConflict, http.StatusLocked:
				default:
					t.Fatalf("round %d: unexpected status %v", round, statuses)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: statuses %v, want exactly one 204", round, statuses)
			}
			got, err := os.ReadFile(filepath.Join(vfolder, "race-"+strconv.Itoa(round)+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, one) && !bytes.Equal(got, two) {
				t.Fatalf("round %d: the file mixes the two bodies", round)
			}
		}
	})
}

// killDuringPatch starts a PATCH of length bytes at offset through node,
// sends body, waits until the partial file holds offset+len(body) bytes,
// and kills the node outright, supervisor and workers.
func killDuringPatch(t *testing.T, node *testProxy, tok, partial string, offset int64, body []byte, length int64) {
	t.Helper()
	reader, writer := io.Pipe()
	done := make(chan struct{})
	go func() { patch(node, tok, offset, reader, length); close(done) }()
	go writer.Write(body)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(partial); err == nil && fi.Size() >= offset+int64(len(body)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never stored %d bytes", offset+int64(len(body)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, w := range children(node.cmd.Process.Pid) {
		syscall.Kill(w, syscall.SIGKILL)
	}
	node.cmd.Process.Signal(syscall.SIGKILL)
	writer.CloseWithError(io.ErrUnexpectedEOF)
	<-done
}

// headAfterLease sends HEAD through node until it stops getting 423, which
// it gets while a dead node's session lock lives on (uploadLockTTL), and
// returns the offset.
func headAfterLease(t *testing.T, node *testProxy, tok string) int64 {
	t.Helper()
	deadline := time.Now().Add(3 * uploadLockTTL)
	for {
		status, offset := headStatus(t, node, tok)
		switch {
		case status == http.StatusOK:
			return offset
		case status != http.StatusLocked:
			t.Fatalf("HEAD after a crash: %d, want 423 and then 200", status)
		case time.Now().After(deadline):
			t.Fatalf("HEAD still gets 423 %s after the crash", 3*uploadLockTTL)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
