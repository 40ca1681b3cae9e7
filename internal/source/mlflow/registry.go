package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	mlflowpb "github.com/tritongate/tritongate/proto/mlflow"
)

// searchPageSize is max_results for model-versions/search. Servers may
// answer with fewer (and a next_page_token).
const searchPageSize = 1000

// maxSearchPages bounds the pages followed (searchPageSize each), against a
// server that keeps handing out tokens.
const maxSearchPages = 10000

// GetModelVersionByAlias resolves a registered model's alias
// (GET /api/2.0/mlflow/registered-models/alias).
func (c *Client) GetModelVersionByAlias(ctx context.Context, model, alias string) (*mlflowpb.ModelVersion, error) {
	subject := fmt.Sprintf("registered model %q, alias %q", model, alias)
	if model == "" || alias == "" {
		return nil, fmt.Errorf("mlflow: get model version by alias (%s): model name and alias must not be empty", subject)
	}
	var resp mlflowpb.GetModelVersionByAlias_Response
	u := c.registryAPI("mlflow/registered-models/alias", url.Values{"name": {model}, "alias": {alias}})
	if err := c.getJSON(ctx, "get model version by alias", subject, u, &resp); err != nil {
		// MLflow answers a missing alias with 400 INVALID_PARAMETER_VALUE
		// "Registered model alias X not found." (an unknown model is 404
		// RESOURCE_DOES_NOT_EXIST).
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && ae.Code == "INVALID_PARAMETER_VALUE" &&
			strings.Contains(ae.Message, "alias") && strings.Contains(ae.Message, "not found") {
			ae.notFound = true
		}
		return nil, err
	}
	if resp.GetModelVersion() == nil {
		return nil, fmt.Errorf("mlflow: get model version by alias (%s): the answer has no model_version", subject)
	}
	return resp.GetModelVersion(), nil
}

// GetModelVersion fetches one version of a registered model
// (GET /api/2.0/mlflow/model-versions/get).
func (c *Client) GetModelVersion(ctx context.Context, model, version string) (*mlflowpb.ModelVersion, error) {
	subject := fmt.Sprintf("registered model %q, version %s", model, version)
	if model == "" || version == "" {
		return nil, fmt.Errorf("mlflow: get model version (%s): model name and version must not be empty", subject)
	}
	var resp mlflowpb.GetModelVersion_Response
	u := c.registryAPI("mlflow/model-versions/get", url.Values{"name": {model}, "version": {version}})
	if err := c.getJSON(ctx, "get model version", subject, u, &resp); err != nil {
		return nil, err
	}
	if resp.GetModelVersion() == nil {
		return nil, fmt.Errorf("mlflow: get model version (%s): the answer has no model_version", subject)
	}
	return resp.GetModelVersion(), nil
}

// GetRegisteredModel fetches a registered model
// (GET /api/2.0/mlflow/registered-models/get); an unknown one is
// source.ErrNotFound.
func (c *Client) GetRegisteredModel(ctx context.Context, model string) (*mlflowpb.RegisteredModel, error) {
	subject := fmt.Sprintf("registered model %q", model)
	if model == "" {
		return nil, errors.New("mlflow: get registered model: the name must not be empty")
	}
	var resp mlflowpb.GetRegisteredModel_Response
	u := c.registryAPI("mlflow/registered-models/get", url.Values{"name": {model}})
	if err := c.getJSON(ctx, "get registered model", subject, u, &resp); err != nil {
		return nil, err
	}
	return resp.GetRegisteredModel(), nil
}

// GetModelVersionDownloadURI returns where a version's artifacts are
// stored: an s3:// URI, an mlflow-artifacts:/ URI served by the tracking
// server's artifacts proxy, ...
// (GET /api/2.0/mlflow/model-versions/get-download-uri).
func (c *Client) GetModelVersionDownloadURI(ctx context.Context, model, version string) (string, error) {
	subject := fmt.Sprintf("registered model %q, version %s", model, version)
	if model == "" || version == "" {
		return "", fmt.Errorf("mlflow: get download URI (%s): model name and version must not be empty", subject)
	}
	var resp mlflowpb.GetModelVersionDownloadUri_Response
	u := c.registryAPI("mlflow/model-versions/get-download-uri", url.Values{"name": {model}, "version": {version}})
	if err := c.getJSON(ctx, "get download URI", subject, u, &resp); err != nil {
		return "", err
	}
	if resp.GetArtifactUri() == "" {
		return "", fmt.Errorf("mlflow: get download URI (%s): the answer has no artifact_uri", subject)
	}
	return resp.GetArtifactUri(), nil
}

// SearchModelVersions returns every version of a registered model, in all
// statuses, following the pages of
// GET /api/2.0/mlflow/model-versions/search?filter=name='<model>'&order_by=version_number ASC.
// The order matters: MLflow pages by offset and orders by last update
// unless told otherwise, so a version updated between two pages would move
// and be skipped; version numbers never change. Versions of other models
// (a server ignoring the filter) are dropped.
func (c *Client) SearchModelVersions(ctx context.Context, model string) ([]*mlflowpb.ModelVersion, error) {
	subject := fmt.Sprintf("registered model %q", model)
	filter, err := NameFilter(model)
	if err != nil {
		return nil, fmt.Errorf("mlflow: search model versions (%s): %w", subject, err)
	}
	var out []*mlflowpb.ModelVersion
	seen := map[string]bool{}
	token := ""
	for page := 1; ; page++ {
		if page > maxSearchPages {
			return nil, fmt.Errorf("mlflow: search model versions (%s): more than %d pages, giving up", subject, maxSearchPages)
		}
		q := url.Values{"filter": {filter}, "max_results": {strconv.Itoa(c.pageSize)}, "order_by": {"version_number ASC"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var resp mlflowpb.SearchModelVersions_Response
		if err := c.getJSON(ctx, "search model versions", subject, c.registryAPI("mlflow/model-versions/search", q), &resp); err != nil {
			return nil, err
		}
		for _, mv := range resp.GetModelVersions() {
			if mv.GetName() == model {
				out = append(out, mv)
			}
		}
		token = resp.GetNextPageToken()
		if token == "" {
			return out, nil
		}
		if seen[token] {
			return nil, fmt.Errorf("mlflow: search model versions (%s): the server repeated page token %q", subject, token)
		}
		seen[token] = true
	}
}

// NameFilter is the search filter selecting a registered model by name:
// name='<model>', or name="<model>" when the name contains a single quote
// (MLflow's filter strings have no escapes).
func NameFilter(model string) (string, error) {
	switch {
	case model == "":
		return "", errors.New("empty model name")
	case !strings.Contains(model, "'"):
		return "name='" + model + "'", nil
	case !strings.Contains(model, `"`):
		return `name="` + model + `"`, nil
	}
	return "", fmt.Errorf("model name %q contains both quote characters: MLflow's search filter cannot express it", model)
}

// RunArtifactURI returns the artifact root of a run
// (GET /api/2.0/mlflow/runs/get): what a runs:/<run_id>/<path> URI is
// relative to.
func (c *Client) RunArtifactURI(ctx context.Context, runID string) (string, error) {
	subject := fmt.Sprintf("run %q", runID)
	if runID == "" {
		return "", errors.New("mlflow: get run: empty run id")
	}
	var resp struct {
		Run struct {
			Info struct {
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"run"`
	}
	if err := c.getPlainJSON(ctx, "get run", subject, c.api("mlflow/runs/get", url.Values{"run_id": {runID}}), &resp); err != nil {
		return "", err
	}
	if resp.Run.Info.ArtifactURI == "" {
		return "", fmt.Errorf("mlflow: get run (%s): the answer has no artifact_uri", subject)
	}
	return resp.Run.Info.ArtifactURI, nil
}

// LoggedModelArtifactURI returns the artifact location of an MLflow 3
// logged model (GET /api/2.0/mlflow/logged-models/<id>): what a
// models:/<model_id> URI names.
func (c *Client) LoggedModelArtifactURI(ctx context.Context, modelID string) (string, error) {
	subject := fmt.Sprintf("logged model %q", modelID)
	if modelID == "" || strings.ContainsAny(modelID, "/?#") {
		return "", fmt.Errorf("mlflow: get logged model: model id %q is not valid", modelID)
	}
	var resp struct {
		Model struct {
			Info struct {
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"model"`
	}
	if err := c.getPlainJSON(ctx, "get logged model", subject, c.api("mlflow/logged-models/"+url.PathEscape(modelID), nil), &resp); err != nil {
		return "", err
	}
	if resp.Model.Info.ArtifactURI == "" {
		return "", fmt.Errorf("mlflow: get logged model (%s): the answer has no artifact_uri", subject)
	}
	return resp.Model.Info.ArtifactURI, nil
}

// getPlainJSON is getJSON for answers decoded with encoding/json (messages
// of MLflow's tracking service, whose schema is not vendored).
func (c *Client) getPlainJSON(ctx context.Context, op, subject string, u *url.URL, resp any) error {
	return c.retry(ctx, func() error {
		body, err := c.getBody(ctx, op, subject, u)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, resp); err != nil {
			return permanent(fmt.Errorf("mlflow: %s (%s): response is not the expected JSON: %w", op, subject, err))
		}
		return nil
	})
}
