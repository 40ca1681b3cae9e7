package mlflow_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/source"
	"github.com/tritongate/tritongate/internal/source/mlflow"
	mlflowpb "github.com/tritongate/tritongate/proto/mlflow"
)

func TestGetModelVersionByAlias(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	v1 := must[int64](t)(s.CreateVersion("ranker", "s3://models/ranker/1"))
	v2 := must[int64](t)(s.CreateVersion("ranker", "s3://models/ranker/2"))
	check(t, s.SetAlias("ranker", "champion", v1))
	check(t, s.SetAlias("ranker", "challenger", v2))
	c := newClient(t, ts.URL)

	for _, tc := range []struct {
		model, alias string
		version      string
		err          error
		parts        []string
	}{
		{model: "ranker", alias: "champion", version: "1"},
		{model: "ranker", alias: "challenger", version: "2"},
		{model: "ranker", alias: "canary", err: source.ErrNotFound,
			// MLflow answers a missing alias with HTTP 400 INVALID_PARAMETER_VALUE, not 404.
			parts: []string{`registered model "ranker"`, `alias "canary"`, "HTTP 400 INVALID_PARAMETER_VALUE", `"Registered model alias canary not found."`}},
		{model: "nope", alias: "champion", err: source.ErrNotFound,
			parts: []string{`registered model "nope"`, `alias "champion"`, "Registered Model with name=nope not found"}},
		{model: "ranker", alias: "", parts: []string{`alias ""`, "must not be empty"}},
	} {
		t.Run(tc.model+"/"+tc.alias, func(t *testing.T) {
			mv, err := c.GetModelVersionByAlias(t.Context(), tc.model, tc.alias)
			if tc.version == "" {
				wantErr(t, err, tc.err, tc.parts...)
				return
			}
			check(t, err)
			if mv.GetVersion() != tc.version || mv.GetName() != tc.model {
				t.Errorf("got %s/%s, want %s/%s", mv.GetName(), mv.GetVersion(), tc.model, tc.version)
			}
			if len(mv.GetAliases()) != 1 || mv.GetAliases()[0] != tc.alias {
				t.Errorf("aliases %v, want [%s]", mv.GetAliases(), tc.alias)
			}
		})
	}
}

func TestSearchModelVersionsPaginates(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	check(t, s.CreateModel("ranker2")) // a prefix of another name: not matched
	for i := range 7 {
		must[int64](t)(s.CreateVersion("ranker", "s3://b/ranker/"+string(rune('a'+i))))
	}
	must[int64](t)(s.CreateVersion("ranker2", "s3://b/other"))
	s.SetPageSize(2)
	c := newClient(t, ts.URL)

	mvs, err := c.SearchModelVersions(t.Context(), "ranker")
	check(t, err)
	if len(mvs) != 7 {
		t.Fatalf("%d versions, want 7", len(mvs))
	}
	for _, mv := range mvs {
		if mv.GetName() != "ranker" {
			t.Errorf("version of %q returned", mv.GetName())
		}
	}
	if n := s.Calls("mlflow/model-versions/search"); n != 4 {
		t.Errorf("%d search calls, want 4 pages of 2", n)
	}
	// An unknown model has no versions (MLflow does not answer 404 here).
	mvs, err = c.SearchModelVersions(t.Context(), "nope")
	check(t, err)
	if len(mvs) != 0 {
		t.Errorf("unknown model: %d versions", len(mvs))
	}
}

func TestNameFilter(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"ranker", "name='ranker'"},
		{"it's", `name="it's"`},
		{`say "hi"`, `name='say "hi"'`},
		{`both ' "`, ""},
		{"", ""},
	} {
		got, err := mlflow.NameFilter(tc.name)
		if tc.want == "" {
			if err == nil {
				t.Errorf("NameFilter(%q) = %q, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NameFilter(%q) = %q, %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestGetModelVersionAndDownloadURI(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	v := must[int64](t)(s.CreateVersion("ranker", "mlflow-artifacts:/1/abc/artifacts/model"))
	check(t, s.SetVersionStatus("ranker", v, mlflowpb.ModelVersionStatus_FAILED_REGISTRATION, "copy failed"))
	c := newClient(t, ts.URL)

	mv, err := c.GetModelVersion(t.Context(), "ranker", "1")
	check(t, err)
	if mv.GetStatus() != mlflowpb.ModelVersionStatus_FAILED_REGISTRATION || mv.GetStatusMessage() != "copy failed" || mv.GetCreationTimestamp() == 0 {
		t.Errorf("got %v", mv)
	}
	uri, err := c.GetModelVersionDownloadURI(t.Context(), "ranker", "1")
	check(t, err)
	if uri != "mlflow-artifacts:/1/abc/artifacts/model" {
		t.Errorf("download URI %q", uri)
	}
	_, err = c.GetModelVersionDownloadURI(t.Context(), "ranker", "9")
	wantErr(t, err, source.ErrNotFound, `registered model "ranker", version 9`, "Model Version (name=ranker, version=9) not found")
	_, err = c.GetModelVersion(t.Context(), "ranker", "x")
	wantErr(t, err, nil, "INVALID_PARAMETER_VALUE", "version x")
	if errors.Is(err, source.ErrNotFound) || errors.Is(err, source.ErrAccessDenied) {
		t.Errorf("a bad parameter maps to a sentinel: %v", err)
	}
}

// TestTolerantJSON decodes answers shaped like a real MLflow server's:
// numbers for int64, fields this schema does not know.
func TestTolerantJSON(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"model_version": {"name": "ranker", "version": "3", "creation_timestamp": 1717000000000,
			"last_updated_timestamp": 1717000000500, "current_stage": "None", "description": "",
			"source": "models:/m-0123", "run_id": "abc", "status": "READY", "tags": [], "aliases": ["champion"],
			"model_id": "m-0123", "deployment_job_state": {"job_id": "", "current_task_name": ""},
			"metrics": [{"key": "auc", "value": 0.91}], "future_field": null}, "another": 1}`)
	}))
	t.Cleanup(ts.Close)
	mv, err := newClient(t, ts.URL).GetModelVersionByAlias(t.Context(), "ranker", "champion")
	check(t, err)
	if mv.GetVersion() != "3" || mv.GetCreationTimestamp() != 1717000000000 || mv.GetStatus() != mlflowpb.ModelVersionStatus_READY {
		t.Errorf("got %v", mv)
	}
}

func TestAuth(t *testing.T) {
	type setup struct {
		token, user, pass string // required by the server
	}
	for _, tc := range []struct {
		name   string
		server setup
		env    map[string]string
		opts   func(*mlflow.Options)
		err    error
	}{
		{name: "token from env", server: setup{token: "t0k"},
			env: map[string]string{"MLFLOW_TRACKING_TOKEN": "t0k"}},
		{name: "basic from env", server: setup{user: "alice", pass: "s3cret"},
			env: map[string]string{"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s3cret"}},
		{name: "basic wins over token", server: setup{user: "alice", pass: "s3cret"},
			env: map[string]string{"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s3cret", "MLFLOW_TRACKING_TOKEN": "t0k"}},
		{name: "token from options", server: setup{token: "t0k"},
			opts: func(o *mlflow.Options) { o.Token = "t0k" }},
		{name: "basic from options", server: setup{user: "bob", pass: "pw"},
			opts: func(o *mlflow.Options) { o.Username, o.Password = "bob", "pw" }},
		{name: "wrong token", server: setup{token: "t0k"},
			env: map[string]string{"MLFLOW_TRACKING_TOKEN": "other"}, err: source.ErrAccessDenied},
		{name: "no credentials", server: setup{user: "alice", pass: "s3cret"}, err: source.ErrAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newServer(t)
			check(t, s.CreateModel("ranker"))
			v := must[int64](t)(s.CreateVersion("ranker", "s3://b/k"))
			check(t, s.SetAlias("ranker", "champion", v))
			if tc.server.token != "" {
				s.RequireToken(tc.server.token)
			}
			if tc.server.user != "" {
				s.RequireBasicAuth(tc.server.user, tc.server.pass)
			}
			env := map[string]string{"MLFLOW_TRACKING_URI": ts.URL}
			for k, v := range tc.env {
				env[k] = v
			}
			o, err := mlflow.OptionsFromEnv(func(k string) string { return env[k] })
			check(t, err)
			o.Backoff = time.Millisecond
			if tc.opts != nil {
				tc.opts(&o)
			}
			c, err := mlflow.New(o)
			check(t, err)
			_, err = c.GetModelVersionByAlias(t.Context(), "ranker", "champion")
			if tc.err == nil {
				check(t, err)
				return
			}
			wantErr(t, err, tc.err, "HTTP 401", `alias "champion"`, "You are not authenticated")
			if n := s.Requests(); n != 1 {
				t.Errorf("%d requests, want 1 (no retry on 401)", n)
			}
		})
	}
}

func TestOptionsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want mlflow.Options
		err  string
	}{
		// Unset is not an error here: the catalog may name the server (New refuses an empty URL).
		{name: "unset", env: map[string]string{}, want: mlflow.Options{}},
		{name: "registry and client cert", env: map[string]string{"MLFLOW_TRACKING_URI": "http://h", "MLFLOW_REGISTRY_URI": "http://r",
			"MLFLOW_TRACKING_CLIENT_CERT_PATH": "/etc/client.pem"},
			want: mlflow.Options{BaseURL: "http://h", RegistryURL: "http://r", ClientCertFile: "/etc/client.pem"}},
		{name: "all", env: map[string]string{
			"MLFLOW_TRACKING_URI": "https://mlflow.example.com/prefix", "MLFLOW_TRACKING_TOKEN": "tok",
			"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p",
			"MLFLOW_TRACKING_INSECURE_TLS": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
			"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_TRACKING_SERVER_CERT_PATH": "/etc/ca.pem",
		}, want: mlflow.Options{BaseURL: "https://mlflow.example.com/prefix", Token: "tok", Username: "u", Password: "p",
			InsecureTLS: true, Retries: 2, Timeout: 5 * time.Second, CAFile: "/etc/ca.pem"}},
		{name: "no retries", env: map[string]string{"MLFLOW_TRACKING_URI": "http://h", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
			want: mlflow.Options{BaseURL: "http://h", Retries: -1}},
		{name: "bad bool", env: map[string]string{"MLFLOW_TRACKING_URI": "http://h", "MLFLOW_TRACKING_INSECURE_TLS": "yes please"},
			err: "MLFLOW_TRACKING_INSECURE_TLS"},
		{name: "bad timeout", env: map[string]string{"MLFLOW_TRACKING_URI": "http://h", "MLFLOW_HTTP_REQUEST_TIMEOUT": "-1"},
			err: "MLFLOW_HTTP_REQUEST_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mlflow.OptionsFromEnv(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				wantErr(t, err, nil, tc.err)
				return
			}
			check(t, err)
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    mlflow.Options
		err  string
	}{
		{"empty", mlflow.Options{}, "set mlflow.tracking_uri in the catalog or MLFLOW_TRACKING_URI"},
		{"bad registry", mlflow.Options{BaseURL: "https://host", RegistryURL: "databricks-uc"}, "registry URI"},
		{"missing client cert", mlflow.Options{BaseURL: "https://host", ClientCertFile: "/nonexistent/client.pem"}, "client certificate"},
		{"databricks", mlflow.Options{BaseURL: "databricks"}, "want the http(s):// URL"},
		{"local", mlflow.Options{BaseURL: "file:///tmp/mlruns"}, "want the http(s):// URL"},
		{"sqlite", mlflow.Options{BaseURL: "sqlite:///mlflow.db"}, "want the http(s):// URL"},
		{"userinfo", mlflow.Options{BaseURL: "https://u:pw@host"}, "MLFLOW_TRACKING_USERNAME"},
		{"half basic", mlflow.Options{BaseURL: "https://host", Username: "u"}, "both the username and the password"},
		{"tls with client", mlflow.Options{BaseURL: "https://host", InsecureTLS: true, HTTPClient: http.DefaultClient}, "HTTPClient"},
		{"missing CA file", mlflow.Options{BaseURL: "https://host", CAFile: "/nonexistent/ca.pem"}, "CA certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mlflow.New(tc.o)
			wantErr(t, err, nil, tc.err)
			if strings.Contains(err.Error(), "pw@") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int // injected
		k        int // times
		retries  int
		err      error // nil: success expected
		failMsg  string
		requests int
	}{
		{name: "503 then ok", status: 503, k: 2, requests: 3},
		{name: "500 then ok", status: 500, k: 1, requests: 2},
		{name: "502 then ok", status: 502, k: 3, requests: 4},
		{name: "429 then ok", status: 429, k: 2, requests: 3},
		{name: "503 too often", status: 503, k: 10, retries: 2, failMsg: "gave up after 3 attempts", requests: 3},
		{name: "no retries", status: 503, k: 1, retries: -1, failMsg: "TEMPORARILY_UNAVAILABLE", requests: 1},
		{name: "404 not retried", status: 404, k: 1, err: source.ErrNotFound, requests: 1},
		{name: "403 not retried", status: 403, k: 1, err: source.ErrAccessDenied, failMsg: "PERMISSION_DENIED", requests: 1},
		{name: "401 not retried", status: 401, k: 1, err: source.ErrAccessDenied, requests: 1},
		{name: "400 not retried", status: 400, k: 1, failMsg: "HTTP 400", requests: 1},
		{name: "501 not retried", status: 501, k: 1, failMsg: "NOT_IMPLEMENTED", requests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newServer(t)
			check(t, s.CreateModel("ranker"))
			v := must[int64](t)(s.CreateVersion("ranker", "s3://b/k"))
			check(t, s.SetAlias("ranker", "champion", v))
			c := newClient(t, ts.URL, func(o *mlflow.Options) { o.Retries = tc.retries })
			s.FailNext(tc.k, tc.status)
			mv, err := c.GetModelVersionByAlias(t.Context(), "ranker", "champion")
			if tc.err == nil && tc.failMsg == "" {
				check(t, err)
				if mv.GetVersion() != "1" {
					t.Errorf("version %q", mv.GetVersion())
				}
			} else {
				wantErr(t, err, tc.err, append([]string{`registered model "ranker", alias "champion"`, "injected failure"}, tc.failMsg)...)
				if tc.err == nil && (errors.Is(err, source.ErrNotFound) || errors.Is(err, source.ErrAccessDenied)) {
					t.Errorf("%v maps to a sentinel", err)
				}
			}
			if n := s.Requests(); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

// TestRetriesConnectionErrors: the server drops the connection without an
// answer, then recovers.
func TestRetriesConnectionErrors(t *testing.T) {
	s := mlflowtestServerWithModel(t)
	var drops atomic.Int32
	drops.Store(3)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if drops.Add(-1) >= 0 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	c := newClient(t, ts.URL, func(o *mlflow.Options) { o.Retries = 10 })
	mv, err := c.GetModelVersionByAlias(t.Context(), "ranker", "champion")
	check(t, err)
	if mv.GetVersion() != "1" {
		t.Errorf("version %q", mv.GetVersion())
	}
}

func TestCanceled(t *testing.T) {
	s, ts := newServer(t)
	check(t, s.CreateModel("ranker"))
	s.FailNext(1000, 503)
	c := newClient(t, ts.URL, func(o *mlflow.Options) { o.Retries = 1000; o.Backoff = time.Hour })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.GetModelVersion(ctx, "ranker", "1")
		done <- err
	}()
	for s.Requests() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel() // during the hour-long backoff
	err := <-done
	wantErr(t, err, nil, "TEMPORARILY_UNAVAILABLE", `registered model "ranker", version 1`)
}

func TestAPIErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
		is     error
	}{
		{"mlflow json", 404, `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model with name=x not found"}`,
			`mlflow: get model version (registered model "x", version 1): HTTP 404 RESOURCE_DOES_NOT_EXIST: "Registered Model with name=x not found"`, source.ErrNotFound},
		{"permission", 403, `{"error_code": "PERMISSION_DENIED", "message": "Permission denied"}`,
			`HTTP 403 PERMISSION_DENIED: "Permission denied"`, source.ErrAccessDenied},
		{"endpoint not found", 404, `{"error_code": "ENDPOINT_NOT_FOUND", "message": "No API route"}`,
			`HTTP 404 ENDPOINT_NOT_FOUND: "No API route"`, nil},
		// MLflow answers routes it does not have with Flask's HTML page: a
		// wrong URL, not a missing model.
		{"html 404", 404, "<html><body>Not Found</body></html>",
			`HTTP 404: "<html><body>Not Found</body></html>" (not an MLflow API answer: is the tracking URI the MLflow server`, nil},
		{"empty 403", 403, "", `HTTP 403: "Forbidden"`, source.ErrAccessDenied},
		{"json without code", 400, `{"message": "bad"}`, `HTTP 400: "bad"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(ts.Close)
			_, err := newClient(t, ts.URL).GetModelVersion(t.Context(), "x", "1")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %s", err, tc.want)
			}
			var ae *mlflow.APIError
			if !errors.As(err, &ae) || ae.StatusCode != tc.status {
				t.Errorf("not an *APIError with status %d: %#v", tc.status, err)
			}
			for _, sentinel := range []error{source.ErrNotFound, source.ErrAccessDenied} {
				if errors.Is(err, sentinel) != (sentinel == tc.is) {
					t.Errorf("errors.Is(%v, %v) = %v", err, sentinel, !(sentinel == tc.is))
				}
			}
		})
	}
}

func TestListArtifacts(t *testing.T) {
	s, ts := newServer(t)
	s.PutArtifact("1/abc/artifacts/model/MLmodel", []byte("x"))
	s.PutArtifact("1/abc/artifacts/model/data/w.bin", []byte("1234"))
	c := newClient(t, ts.URL)
	for _, uri := range []string{
		"mlflow-artifacts:/1/abc/artifacts/model",
		"mlflow-artifacts:///1/abc/artifacts/model/",
		ts.URL + "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model",
	} {
		files, err := c.ListArtifacts(t.Context(), uri)
		check(t, err)
		if len(files) != 2 || files[0].GetPath() != "MLmodel" || files[0].GetFileSize() != 1 || files[0].GetIsDir() ||
			files[1].GetPath() != "data" || !files[1].GetIsDir() {
			t.Errorf("%s: %v", uri, files)
		}
	}
	rc, err := c.OpenArtifact(t.Context(), "mlflow-artifacts:/1/abc/artifacts/model/data/w.bin")
	check(t, err)
	b, err := io.ReadAll(rc)
	rc.Close()
	check(t, err)
	if string(b) != "1234" {
		t.Errorf("downloaded %q", b)
	}
	_, err = c.OpenArtifact(t.Context(), "mlflow-artifacts:/1/abc/artifacts/model/nope")
	wantErr(t, err, source.ErrNotFound, "mlflow-artifacts:/1/abc/artifacts/model/nope")
	for _, bad := range []string{"s3://b/k", "mlflow-artifacts:/a/../b", "https://elsewhere/files/x", "mlflow-artifacts://:5000/x"} {
		_, err := c.ListArtifacts(t.Context(), bad)
		wantErr(t, err, nil, bad)
	}
}

func mlflowtestServerWithModel(t *testing.T) interface {
	ServeHTTP(http.ResponseWriter, *http.Request)
} {
	s, _ := newServer(t)
	check(t, s.CreateModel("ranker"))
	v := must[int64](t)(s.CreateVersion("ranker", "s3://b/k"))
	check(t, s.SetAlias("ranker", "champion", v))
	return s
}
