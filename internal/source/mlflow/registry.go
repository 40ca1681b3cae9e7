package mlflow

import (
	"context"
	"errors"
	"fmt"
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
	u := c.api("mlflow/registered-models/alias", url.Values{"name": {model}, "alias": {alias}})
	if err := c.getJSON(ctx, "get model version by alias", subject, u, &resp); err != nil {
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
	u := c.api("mlflow/model-versions/get", url.Values{"name": {model}, "version": {version}})
	if err := c.getJSON(ctx, "get model version", subject, u, &resp); err != nil {
		return nil, err
	}
	if resp.GetModelVersion() == nil {
		return nil, fmt.Errorf("mlflow: get model version (%s): the answer has no model_version", subject)
	}
	return resp.GetModelVersion(), nil
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
	u := c.api("mlflow/model-versions/get-download-uri", url.Values{"name": {model}, "version": {version}})
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
// GET /api/2.0/mlflow/model-versions/search?filter=name='<model>'.
// Versions of other models (a server ignoring the filter) are dropped.
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
		q := url.Values{"filter": {filter}, "max_results": {strconv.Itoa(searchPageSize)}}
		if token != "" {
			q.Set("page_token", token)
		}
		var resp mlflowpb.SearchModelVersions_Response
		if err := c.getJSON(ctx, "search model versions", subject, c.api("mlflow/model-versions/search", q), &resp); err != nil {
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
