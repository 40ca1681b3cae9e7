package mlflowtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tritongate/tritongate/internal/source/mlflow/mlflowtest"
	mlflowpb "github.com/tritongate/tritongate/proto/mlflow"
)

type call struct {
	method, path, body string
	status             int
	want               []string // substrings of the answer
}

// TestREST drives the server over HTTP only, as MLflow's own client would.
func TestREST(t *testing.T) {
	s := mlflowtest.New()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	s.SetPageSize(1)
	for _, c := range []call{
		{"POST", "mlflow/registered-models/create", `{"name": "ranker"}`, 200, []string{`"name":"ranker"`}},
		{"POST", "mlflow/registered-models/create", `{"name": "ranker"}`, 400, []string{`"error_code":"RESOURCE_ALREADY_EXISTS"`}},
		{"POST", "mlflow/registered-models/create", `{}`, 400, []string{`INVALID_PARAMETER_VALUE`, `'name'`}},
		{"POST", "mlflow/model-versions/create", `{"name": "ranker", "source": "s3://b/1", "run_id": "r1", "unknown_field": 1}`, 200,
			[]string{`"version":"1"`, `"status":"READY"`, `"source":"s3://b/1"`, `"run_id":"r1"`}},
		{"POST", "mlflow/model-versions/create", `{"name": "ranker", "source": "s3://b/2"}`, 200, []string{`"version":"2"`}},
		{"POST", "mlflow/model-versions/create", `{"name": "nope", "source": "s3://b/2"}`, 404, []string{`RESOURCE_DOES_NOT_EXIST`}},
		{"POST", "mlflow/registered-models/alias", `{"name": "ranker", "alias": "champion", "version": "2"}`, 200, []string{`{}`}},
		{"POST", "mlflow/registered-models/alias", `{"name": "ranker", "alias": "latest", "version": "2"}`, 400, []string{`reserved`}},
		{"POST", "mlflow/registered-models/alias", `{"name": "ranker", "alias": "v3", "version": "2"}`, 400, []string{`reserved`}},
		{"POST", "mlflow/registered-models/alias", `{"name": "ranker", "alias": "x", "version": "9"}`, 404, []string{`version=9`}},
		{"GET", "mlflow/registered-models/alias?name=ranker&alias=champion", "", 200, []string{`"version":"2"`, `"aliases":["champion"]`}},
		{"GET", "mlflow/registered-models/get?name=ranker", "", 200, []string{`"aliases":[{"alias":"champion","version":"2"}]`}},
		{"GET", "mlflow/model-versions/get?name=ranker&version=1", "", 200, []string{`"version":"1"`, `"current_stage":"None"`}},
		{"GET", "mlflow/model-versions/get?name=ranker&version=one", "", 400, []string{`must be an integer`}},
		{"GET", "mlflow/model-versions/get?name=ranker", "", 400, []string{`'version'`}},
		{"GET", "mlflow/model-versions/get-download-uri?name=ranker&version=1", "", 200, []string{`{"artifact_uri":"s3://b/1"}`}},
		{"GET", "mlflow/model-versions/search?filter=" + url.QueryEscape(`name="ranker"`), "", 200, []string{`"version":"2"`, `"next_page_token"`}},
		{"GET", "mlflow/model-versions/search?filter=" + url.QueryEscape(`name LIKE 'r%'`), "", 400, []string{`INVALID_PARAMETER_VALUE`}},
		{"GET", "mlflow/model-versions/search?max_results=0", "", 400, []string{`max_results`}},
		{"GET", "mlflow/model-versions/search?max_results=many", "", 400, []string{`MALFORMED_REQUEST`}},
		{"GET", "mlflow/model-versions/search?page_token=%21%21", "", 400, []string{`page token`}},
		{"DELETE", "mlflow/registered-models/alias", `{"name": "ranker", "alias": "champion"}`, 200, nil},
		{"GET", "mlflow/registered-models/alias?name=ranker&alias=champion", "", 400, []string{`"error_code":"INVALID_PARAMETER_VALUE"`, `Registered model alias champion not found.`}},
		{"GET", "mlflow/registered-models/alias?name=nope&alias=champion", "", 404, []string{`RESOURCE_DOES_NOT_EXIST`}},
		{"GET", "mlflow/model-versions/search?order_by=creation_timestamp+DESC&order_by=version_number", "", 200, []string{`"version":"2"`}},
		{"GET", "mlflow/model-versions/search?order_by=size+DESC", "", 400, []string{`Invalid order by key 'size'`}},
		{"PUT", "mlflow-artifacts/artifacts/1/r/model/empty.txt", "", 200, nil},
		{"GET", "mlflow-artifacts/artifacts?path=1/r/model", "", 200, []string{`{"path":"empty.txt","is_dir":false}`}},
		{"GET", "mlflow/runs/get?run_id=nope", "", 404, []string{`Run with id=nope not found`}},
		{"GET", "mlflow/logged-models/m-nope", "", 404, []string{`RESOURCE_DOES_NOT_EXIST`}},
		{"PUT", "mlflow-artifacts/artifacts/1/r/model/model.onnx", "onnx!", 200, nil},
		{"GET", "mlflow-artifacts/artifacts/1/r/model/model.onnx", "", 200, []string{"onnx!"}},
		{"GET", "mlflow-artifacts/artifacts?path=1/r", "", 200, []string{`{"files":[{"path":"model","is_dir":true}]}`}},
		{"GET", "mlflow-artifacts/artifacts?path=1/r/model", "", 200, []string{`{"path":"model.onnx","is_dir":false,"file_size":"5"}`}},
		{"GET", "mlflow-artifacts/artifacts?path=1/../etc", "", 400, []string{`Invalid path`}},
		{"GET", "mlflow-artifacts/artifacts/1/r/model/none", "", 404, []string{`RESOURCE_DOES_NOT_EXIST`}},
		{"GET", "mlflow/experiments/list", "", 404, []string{`<title>404 Not Found</title>`}},
		{"GET", "mlflow/registered-models/create", "", 405, []string{`Method Not Allowed`}},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, err := http.NewRequest(c.method, ts.URL+"/api/2.0/"+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.status {
				t.Errorf("HTTP %d, want %d: %s", res.StatusCode, c.status, b)
			}
			for _, w := range c.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("answer %s does not contain %s", b, w)
				}
			}
			// MLflow answers routes it does not have with Flask's HTML pages.
			if res.StatusCode != 200 && res.StatusCode != 404 && res.StatusCode != 405 || strings.Contains(string(b), "error_code") {
				var e struct{ ErrorCode, Message string }
				if err := json.Unmarshal(b, &e); err != nil || e.Message == "" {
					t.Errorf("error body %s is not MLflow's JSON error", b)
				}
			}
		})
	}
}

func TestSearchPages(t *testing.T) {
	s := mlflowtest.New()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	s.CreateModel("a")
	s.CreateModel("b")
	for range 5 {
		s.CreateVersion("a", "s3://x")
	}
	s.CreateVersion("b", "s3://y")
	s.SetPageSize(2)
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		q := url.Values{"filter": {"name='a'"}, "max_results": {"1000"}}
		if token != "" {
			q.Set("page_token", token)
		}
		res, err := http.Get(ts.URL + "/api/2.0/mlflow/model-versions/search?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var resp mlflowpb.SearchModelVersions_Response
		if err := protojson.Unmarshal(b, &resp); err != nil {
			t.Fatal(err)
		}
		for _, mv := range resp.GetModelVersions() {
			got = append(got, mv.GetName()+"/"+mv.GetVersion())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if strings.Join(got, " ") != "a/5 a/4 a/3 a/2 a/1" {
		t.Errorf("pages gave %v", got)
	}
}

// TestSearchOrder: MLflow orders by last update unless asked otherwise, and
// pages by offset, so a version updated between two pages moves and is
// skipped; ordering by version number keeps every version.
func TestSearchOrder(t *testing.T) {
	s := mlflowtest.New()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	s.CreateModel("a")
	for range 4 {
		s.CreateVersion("a", "s3://x")
	}
	s.SetPageSize(2)
	walk := func(order string) []string {
		var got []string
		token := ""
		for pages := 0; ; pages++ {
			q := url.Values{"filter": {"name='a'"}}
			if order != "" {
				q.Set("order_by", order)
			}
			if token != "" {
				q.Set("page_token", token)
			}
			res, err := http.Get(ts.URL + "/api/2.0/mlflow/model-versions/search?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var resp mlflowpb.SearchModelVersions_Response
			if err := protojson.Unmarshal(b, &resp); err != nil {
				t.Fatal(err)
			}
			for _, mv := range resp.GetModelVersions() {
				got = append(got, mv.GetVersion())
			}
			if pages == 0 {
				s.TouchVersion("a", 1) // between the pages: version 1 is now the newest
			}
			if token = resp.GetNextPageToken(); token == "" {
				return got
			}
		}
	}
	if got := strings.Join(walk(""), " "); got != "4 3 3 2" {
		t.Errorf("default order across an update: %s, want 4 3 3 2 (version 1 skipped, as MLflow does)", got)
	}
	if got := strings.Join(walk("version_number ASC"), " "); got != "1 2 3 4" {
		t.Errorf("order_by version_number ASC: %s, want 1 2 3 4", got)
	}
}

func TestRunsLoggedModelsAndNoServe(t *testing.T) {
	s := mlflowtest.New()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	run := s.CreateRun("mlflow-artifacts:/0/abc/artifacts")
	lm := s.CreateLoggedModel("mlflow-artifacts:/0/models/m-1/artifacts")
	s.CreateModel("m")
	s.CreateVersion("m", "models:/"+lm)
	get := func(path string) (int, string) {
		res, err := http.Get(ts.URL + "/api/2.0/" + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(b)
	}
	if st, b := get("mlflow/runs/get?run_id=" + run); st != 200 || !strings.Contains(b, `"artifact_uri":"mlflow-artifacts:/0/abc/artifacts"`) {
		t.Errorf("runs/get: %d %s", st, b)
	}
	if st, b := get("mlflow/logged-models/" + lm); st != 200 || !strings.Contains(b, `"artifact_uri":"mlflow-artifacts:/0/models/m-1/artifacts"`) {
		t.Errorf("logged-models: %d %s", st, b)
	}
	if st, b := get("mlflow/model-versions/get-download-uri?name=m&version=1"); st != 200 || !strings.Contains(b, `mlflow-artifacts:/0/models/m-1/artifacts`) {
		t.Errorf("download URI of a logged model's version: %d %s", st, b)
	}
	s.NoServeArtifacts()
	if st, b := get("mlflow-artifacts/artifacts?path=0"); st != 503 || !strings.HasPrefix(b, "Endpoint: /api/2.0/mlflow-artifacts/artifacts disabled") {
		t.Errorf("listing without --serve-artifacts: %d %s", st, b)
	}
}

func TestFaultsAndAuth(t *testing.T) {
	s := mlflowtest.New()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	s.RequireToken("tok")
	s.RequireBasicAuth("u", "p")
	s.FailNext(2, 503)
	s.FailNext(1, 429)
	get := func(auth func(*http.Request)) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", ts.URL+"/api/2.0/mlflow/registered-models/get?name=x", nil)
		if auth != nil {
			auth(req)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(b), res.Header
	}
	for i, want := range []int{503, 503, 429} {
		if st, body, _ := get(nil); st != want || !strings.Contains(body, "injected failure") {
			t.Errorf("request %d: HTTP %d %s, want %d", i, st, body, want)
		}
	}
	if st, body, h := get(nil); st != 401 || h.Get("WWW-Authenticate") == "" || !strings.Contains(body, "not authenticated") {
		t.Errorf("no credentials: HTTP %d %s", st, body)
	}
	if st, _, _ := get(func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }); st != 404 {
		t.Errorf("token: HTTP %d, want 404 (authenticated, model missing)", st)
	}
	if st, _, _ := get(func(r *http.Request) { r.SetBasicAuth("u", "p") }); st != 404 {
		t.Errorf("basic: HTTP %d, want 404", st)
	}
	if st, _, _ := get(func(r *http.Request) { r.SetBasicAuth("u", "wrong") }); st != 401 {
		t.Errorf("wrong password: HTTP %d, want 401", st)
	}
	if n := s.Requests(); n != 7 {
		t.Errorf("Requests() = %d, want 7", n)
	}
	if n := s.Calls("mlflow/registered-models/get"); n != 7 {
		t.Errorf("Calls() = %d, want 7", n)
	}
}

func TestGoAPIErrors(t *testing.T) {
	s := mlflowtest.New()
	for _, err := range []error{
		s.CreateModel(""),
		func() error { _, err := s.CreateVersion("nope", "s3://x"); return err }(),
		s.SetAlias("nope", "a", 1),
		s.SetVersionStatus("nope", 1, mlflowpb.ModelVersionStatus_READY, ""),
		s.DeleteAlias("nope", "a"),
	} {
		if err == nil {
			t.Error("no error")
		}
	}
	if err := s.CreateModel("m"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateModel("m"); err == nil || !strings.Contains(err.Error(), "RESOURCE_ALREADY_EXISTS") {
		t.Errorf("duplicate model: %v", err)
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "name='x'", `name="x"`, " name = 'a b' ", "name='", "name=x", "name LIKE 'x'", `name='it"s'`, "name=''", "name='x' AND 1=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		name, all, err := mlflowtest.ParseFilter(filter)
		if err != nil {
			return
		}
		if all {
			if strings.TrimSpace(filter) != "" || name != "" {
				t.Errorf("%q: all with name %q", filter, name)
			}
			return
		}
		if name == "" || !strings.Contains(filter, name) {
			t.Errorf("%q: name %q", filter, name)
		}
		if strings.Contains(name, "'") && strings.Contains(name, `"`) {
			t.Errorf("%q: name %q has both quotes", filter, name)
		}
	})
}
