package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runZ1 measures a folder of mixed files sent as one stream: a ZIP, or
// for the limit the files back to back.
func (b *bench) runZ1() {
	b.results.define(metric{ID: "Z1", Title: fmt.Sprintf("Z1 %s folder of mixed files as a streamed ZIP", formatBytes(b.opts.z1Size)), Unit: "MB/s", HigherBetter: true, Baseline: "limit-sendfile", CPUUnit: "s/GiB"})
	servers := b.serversWith(func(s *server) bool { return s.treePrefix != "" || s.proxy != nil })
	for range b.opts.runs {
		for _, s := range servers {
			b.runMeasured([]string{"Z1"}, s, func() ([]float64, float64, error) {
				target, err := s.treeTarget(zipDir)
				if err != nil {
					return nil, 0, err
				}
				conn := newHTTPConn(s.addr, requestTimeout)
				defer conn.close()
				started := time.Now()
				resp, err := conn.do(request{method: "GET", target: target})
				if err != nil {
					return nil, 0, err
				}
				elapsed := time.Since(started)
				if resp.status != 200 || resp.bodyLen < b.opts.z1Size {
					return nil, 0, fmt.Errorf("GET %s: status %d with %d bytes, expected 200 with at least %d", shortTarget(target), resp.status, resp.bodyLen, b.opts.z1Size)
				}
				return []float64{mbPerSecond(resp.bodyLen, elapsed)}, gib(resp.bodyLen), nil
			})
		}
	}
}

func (b *bench) proxies() []*server {
	return b.serversWith(func(s *server) bool { return s.proxy != nil })
}

// runCommand runs argv with its output discarded and records its wall
// time in ms and its CPU seconds (rusage) under metric ids. Its peak RSS
// is not recorded, because a child forked from the harness reports the
// harness's RSS at the fork.
func (b *bench) runCommand(ids []string, name string, argv ...string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	started := time.Now()
	err := cmd.Run()
	elapsed := time.Since(started)
	if err != nil {
		b.results.fail(ids[0], name, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr.String()))
		return
	}
	cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	for _, id := range ids {
		b.results.add(id, name, float64(elapsed.Microseconds())/1000, 1, cpu, 0)
	}
}

// runT1 measures the usage of the tree by GET /folder/usage and by du -s.
func (b *bench) runT1() {
	b.results.define(metric{ID: "T1", Title: fmt.Sprintf("T1 usage of a %d-file tree", b.opts.treeFiles), Unit: "ms", Baseline: "du -s", CPUUnit: "s/op"})
	tree := filepath.Join(b.trees, treeDir)
	exec.Command("du", "-s", tree).Run() // warms the inode cache for every contender alike
	for range b.opts.runs {
		b.runCommand([]string{"T1"}, "du -s", "du", "-s", tree)
		for _, s := range b.proxies() {
			b.runMeasured([]string{"T1"}, s, func() ([]float64, float64, error) {
				var usage struct {
					FileCount int64 `json:"file_count"`
					UsedBytes int64 `json:"used_bytes"`
				}
				started := time.Now()
				err := s.proxy.call("GET", "/folder/usage", map[string]any{"volume": volumeName, "vfid": vfid(treeFolder)}, 200, &usage)
				elapsed := time.Since(started)
				if err == nil && usage.FileCount < int64(b.opts.treeFiles) {
					err = fmt.Errorf("GET /folder/usage: file_count %d, expected at least %d", usage.FileCount, b.opts.treeFiles)
				}
				return []float64{ms(elapsed)}, 1, err
			})
		}
	}
}

// runT2T3 measures T2, a clone of the tree (POST /folder/clone, cp -a)
// once per run, and then T3, the delete of each clone (POST
// /folder/delete, rm -rf): the call and the time until the space is free.
func (b *bench) runT2T3() {
	b.results.define(metric{ID: "T2", Title: fmt.Sprintf("T2 clone of a %d-file tree", b.opts.treeFiles), Unit: "ms", Baseline: "cp -a", CPUUnit: "s/op"})
	b.results.define(metric{ID: "T3 call", Title: "T3 delete of a clone: manager call latency", Unit: "ms", Baseline: "rm -rf", CPUUnit: "s/op"})
	b.results.define(metric{ID: "T3 free", Title: "T3 delete of a clone: time until the space is free", Unit: "ms", Baseline: "rm -rf", CPUUnit: "s/op"})
	tree := filepath.Join(b.trees, treeDir)
	clones := map[string][]string{} // proxy name to its clones' folder ids
	var copies []string
	for run := range b.opts.runs {
		dst := filepath.Join(b.trees, fmt.Sprintf("copy-%d", run))
		b.runCommand([]string{"T2"}, "cp -a", "cp", "-a", tree, dst)
		copies = append(copies, dst)
		exec.Command("sync").Run()
		for _, s := range b.proxies() {
			clone := newFolderID()
			b.runMeasured([]string{"T2"}, s, func() ([]float64, float64, error) {
				body := map[string]any{"src_volume": volumeName, "src_vfid": vfid(treeFolder), "dst_volume": volumeName, "dst_vfid": vfid(clone)}
				started := time.Now()
				err := s.proxy.call("POST", "/folder/clone", body, 204, nil)
				return []float64{ms(time.Since(started))}, 1, err
			})
			clones[s.name] = append(clones[s.name], clone)
			exec.Command("sync").Run()
		}
	}
	if !b.wants("T3") {
		return
	}
	for run := range b.opts.runs {
		b.runCommand([]string{"T3 call", "T3 free"}, "rm -rf", "rm", "-rf", copies[run])
		exec.Command("sync").Run()
		for _, s := range b.proxies() {
			if run >= len(clones[s.name]) {
				continue
			}
			clone := clones[s.name][run]
			b.runMeasured([]string{"T3 call", "T3 free"}, s, func() ([]float64, float64, error) {
				return b.deleteAndWait(s, clone)
			})
			exec.Command("sync").Run()
		}
	}
}

// deleteAndWait deletes a vfolder and waits until its files are gone from
// the volume: the folder itself and everything in the quota scope's
// .trash folder, where the proxy moves a folder before it frees it in
// the background.
func (b *bench) deleteAndWait(s *server, folder string) ([]float64, float64, error) {
	path := folderPath(s.proxy.volume, folder)
	if _, err := os.Stat(path); err != nil {
		return nil, 0, fmt.Errorf("clone %s is missing before the delete: %w", folder, err)
	}
	trash := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(path))), ".trash")

	started := time.Now()
	err := s.proxy.call("POST", "/folder/delete", map[string]any{"volume": volumeName, "vfid": vfid(folder)}, 204, nil)
	call := time.Since(started)
	if err != nil {
		return nil, 0, err
	}

	timeout := b.opts.freeTimeout
	if b.freeTimedOut[s.name] {
		// It never freed a folder in time before; do not spend the full
		// wait again on every run.
		timeout = 2 * time.Second
	}
	deadline := started.Add(timeout)
	for {
		_, statErr := os.Stat(path)
		entries, readErr := os.ReadDir(trash)
		if errors.Is(statErr, os.ErrNotExist) && (len(entries) == 0 || errors.Is(readErr, os.ErrNotExist)) {
			break
		}
		if time.Now().After(deadline) {
			// The call's latency still counts; only the free time is
			// missing.
			b.freeTimedOut[s.name] = true
			b.results.fail("T3 free", s.name, fmt.Errorf("folder %s still on disk %s after the delete call returned (%d entries in %s)", folder, timeout, len(entries), trash))
			return []float64{ms(call), math.NaN()}, 1, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return []float64{ms(call), ms(time.Since(started))}, 1, nil
}

// runT4 measures the listing of one folder of many entries by POST
// /folder/file/list (scandir-limit 0) and by ls -f.
func (b *bench) runT4() {
	b.results.define(metric{ID: "T4", Title: fmt.Sprintf("T4 listing of a %d-entry folder", b.opts.flatEntries), Unit: "ms", Baseline: "ls -f", CPUUnit: "s/op"})
	flat := filepath.Join(b.trees, flatDir)
	exec.Command("ls", "-f", flat).Run()
	for range b.opts.runs {
		b.runCommand([]string{"T4"}, "ls -f", "ls", "-f", flat)
		for _, s := range b.proxies() {
			b.runMeasured([]string{"T4"}, s, func() ([]float64, float64, error) {
				var listing struct {
					Items []struct{} `json:"items"`
				}
				started := time.Now()
				err := s.proxy.call("POST", "/folder/file/list", map[string]any{"volume": volumeName, "vfid": vfid(flatFolder), "relpath": "."}, 200, &listing)
				elapsed := time.Since(started)
				if err == nil && len(listing.Items) != b.opts.flatEntries {
					err = fmt.Errorf("POST /folder/file/list: %d items, expected %d", len(listing.Items), b.opts.flatEntries)
				}
				return []float64{ms(elapsed)}, 1, err
			})
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
