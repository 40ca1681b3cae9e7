// Package peers starts the real servers the interop suite tests against, on
// loopback, each owned by a test and stopped with it: versitygw (S3), an
// MLflow 3 tracking server (SQLite store; artifacts proxied or straight in
// S3; optionally with basic auth), and the project's own binaries. The
// Python peers come from the virtualenv that interop/setup.sh makes
// (.cache/interop/venv); Python scripts run from interop/py.
//
// Tests using it carry the build tag "interop" and run with `make interop`.
package peers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Env locates the repository, its built binaries and the interop
// virtualenv.
type Env struct {
	// Root is the repository's root (where go.mod is).
	Root string
	// Bin holds the project's binaries (make build).
	Bin string
	// Venv is the interop virtualenv.
	Venv string
	// Cache is .cache/interop.
	Cache string
}

var (
	envOnce sync.Once
	env     *Env
	envErr  error
)

// Find returns the environment, or fails the test with what to run.
func Find(t testing.TB) *Env {
	t.Helper()
	envOnce.Do(func() { env, envErr = find() })
	if envErr != nil {
		t.Fatalf("interop: %v", envErr)
	}
	return env
}

func find() (*Env, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
	e := &Env{Root: dir, Bin: filepath.Join(dir, "bin"), Cache: filepath.Join(dir, ".cache", "interop")}
	e.Venv = filepath.Join(e.Cache, "venv")
	if v := os.Getenv("INTEROP_VENV"); v != "" {
		e.Venv = v
	}
	if _, err := os.Stat(filepath.Join(e.Venv, "bin", "python")); err != nil {
		return nil, fmt.Errorf("no virtualenv at %s: run make interop (or interop/setup.sh)", e.Venv)
	}
	for _, b := range []string{"syncer", "gateway", "tritonlite", "modelctl", "loadtest"} {
		if _, err := os.Stat(filepath.Join(e.Bin, b)); err != nil {
			return nil, fmt.Errorf("no %s in %s: run make build", b, e.Bin)
		}
	}
	return e, nil
}

// Python is the virtualenv's interpreter.
func (e *Env) Python() string { return filepath.Join(e.Venv, "bin", "python") }

// Tool is a program installed in the virtualenv's bin/ (mlflow).
func (e *Env) Tool(name string) string { return filepath.Join(e.Venv, "bin", name) }

// BinPath is one of the project's binaries.
func (e *Env) BinPath(name string) string { return filepath.Join(e.Bin, name) }

// BaseEnv is the environment peers and scripts run with: the virtualenv
// first on PATH, no proxy, MLflow's telemetry off, and nothing from the
// caller's MLflow or AWS settings (each test sets what it means).
func (e *Env) BaseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MLFLOW_"), strings.HasPrefix(k, "AWS_"),
			strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "https_proxy"), strings.EqualFold(k, "all_proxy"),
			k == "PATH", k == "VIRTUAL_ENV", k == "PYTHONPATH":
			continue
		}
		out = append(out, kv)
	}
	return append(out,
		"PATH="+filepath.Join(e.Venv, "bin")+":"+os.Getenv("PATH"),
		"VIRTUAL_ENV="+e.Venv,
		"NO_PROXY=*",
		"MLFLOW_DISABLE_TELEMETRY=true",
		"DO_NOT_TRACK=true",
		"PYTHONUNBUFFERED=1",
	)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Proc is a peer process owned by a test: stopped (SIGTERM, then SIGKILL
// after 10 s) and waited for when the test ends. Its output goes to Log.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs a peer process with env (nil: BaseEnv) in dir ("" : a temp
// dir), its output to a log file in the test's temp dir, stopped when the
// test ends.
func (e *Env) Start(t testing.TB, name string, env []string, dir string, prog string, args ...string) *Proc {
	t.Helper()
	if env == nil {
		env = e.BaseEnv()
	}
	if dir == "" {
		dir = t.TempDir()
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children stop with it
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return p
}

// Stop ends the process group (SIGTERM, SIGKILL after 10 s) and waits.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Kill sends SIGKILL to the process group and waits.
func (p *Proc) Kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Wait waits for the process to end by itself, at most d.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("%s still running after %s", p.Name, d)
	}
}

// Output is the log so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// httpClient keeps no idle connections: tritonserver waits out its exit
// timeout for every open HTTP connection when it stops.
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// WaitHTTP polls url until it answers 200, the process exits, or d passes.
func WaitHTTP(t testing.TB, p *Proc, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		res, err := httpClient.Get(url)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if done, perr := p.Exited(); done {
			t.Fatalf("%s exited (%v) before %s answered:\n%s", p.Name, perr, url, tail(p.Log, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not answer 200 within %s (last: %v):\n%s", p.Name, url, d, err, tail(p.Log, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitTCP polls addr until it accepts a connection, the process exits, or
// d passes.
func WaitTCP(t testing.TB, p *Proc, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if done, perr := p.Exited(); done {
			t.Fatalf("%s exited (%v) before listening on %s:\n%s", p.Name, perr, addr, tail(p.Log, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nothing listens on %s after %s:\n%s", p.Name, addr, d, tail(p.Log, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Run runs a command to its end (bounded by timeout) and returns its
// stdout; stderr is kept for the failure message. A non-zero exit fails
// the test unless allowFail, in which case the error is returned too.
func Run(t testing.TB, timeout time.Duration, env []string, prog string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: timed out after %s", filepath.Base(prog), timeout)
	}
	return out.String(), errb.String(), err
}

// Script runs interop/py/<name> with the virtualenv's Python and env (nil:
// BaseEnv), bounded by 5 minutes, and returns the lines it printed. A
// failure fails the test with the script's stderr.
func (e *Env) Script(t testing.TB, env []string, name string, args ...string) []string {
	t.Helper()
	out, err := e.TryScript(t, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryScript is Script returning the failure instead.
func (e *Env) TryScript(t testing.TB, env []string, name string, args ...string) ([]string, error) {
	t.Helper()
	if env == nil {
		env = e.BaseEnv()
	}
	path := filepath.Join(e.Root, "interop", "py", name)
	stdout, stderr, err := Run(t, 5*time.Minute, env, e.Python(), append([]string{path}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, lastLines(stderr, 30))
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Addr is "127.0.0.1:port".
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
