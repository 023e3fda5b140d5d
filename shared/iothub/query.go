package iothub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// QueryOptions contains the optional parameters for Client.NewQueryPager.
type QueryOptions struct {
	// PageSize asks for at most this many items per page (the hub caps it
	// at 100 and may return fewer); 0 leaves it to the hub.
	PageSize int32
	// ContinuationToken, when set, starts the pager at the page a previous
	// QueryResponse.ContinuationToken named, so a stateless caller (an HTTP
	// API handing tokens to its own clients) can resume a query.
	ContinuationToken string
}

// QueryResponse is one page of query results.
type QueryResponse struct {
	// Items are the page's results: twins for "SELECT * FROM devices",
	// projections or aggregates otherwise.
	Items []json.RawMessage
	// ItemType is the hub's x-ms-item-type, e.g. "twin" or "raw".
	ItemType string
	// ContinuationToken is set when more pages follow.
	ContinuationToken *string
}

// queryBody is the POST /devices/query document.
type queryBody struct {
	Query string `json:"query"`
}

// NewQueryPager returns a pager over the results of an IoT Hub query such as
// "SELECT * FROM devices WHERE tags.site = 'a'". Creating it sends nothing;
// each NextPage call sends one request. Queries only read, so failed pages
// are retried under the client's retry options.
// If the operation fails it returns an *azcore.ResponseError (from NextPage).
func (c *Client) NewQueryPager(query string, opts *QueryOptions) *runtime.Pager[QueryResponse] {
	if opts == nil {
		opts = &QueryOptions{}
	}
	pageSize := opts.PageSize
	opts = &QueryOptions{PageSize: opts.PageSize, ContinuationToken: opts.ContinuationToken} // the caller may reuse theirs
	return runtime.NewPager(runtime.PagingHandler[QueryResponse]{
		More: func(page QueryResponse) bool {
			return page.ContinuationToken != nil && *page.ContinuationToken != ""
		},
		Fetcher: func(ctx context.Context, prev *QueryResponse) (QueryResponse, error) {
			continuation := opts.ContinuationToken
			if prev != nil && prev.ContinuationToken != nil {
				continuation = *prev.ContinuationToken
			}
			return c.queryPage(ctx, query, pageSize, continuation)
		},
		Tracer: c.internal.Tracer(),
	})
}

func (c *Client) queryPage(ctx context.Context, query string, pageSize int32, continuation string) (QueryResponse, error) {
	req, err := c.newRequest(ctx, http.MethodPost, "devices", "query")
	if err != nil {
		return QueryResponse{}, err
	}
	if pageSize > 0 {
		req.Raw().Header.Set("x-ms-max-item-count", strconv.FormatInt(int64(pageSize), 10))
	}
	if continuation != "" {
		req.Raw().Header.Set("x-ms-continuation", continuation)
	}
	if err := runtime.MarshalAsJSON(req, queryBody{Query: query}); err != nil {
		return QueryResponse{}, fmt.Errorf("iothub: query: encoding request: %w", err)
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return QueryResponse{}, err
	}
	page := QueryResponse{ItemType: resp.Header.Get("x-ms-item-type")}
	if token := resp.Header.Get("x-ms-continuation"); token != "" {
		page.ContinuationToken = &token
	}
	if err := runtime.UnmarshalAsJSON(resp, &page.Items); err != nil {
		return QueryResponse{}, fmt.Errorf("iothub: query: decoding page: %w", err)
	}
	return page, nil
}
