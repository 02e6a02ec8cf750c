package llm

import "context"

// opaqueProvider is a tenant's provider: every error it returns, before or during an
// answer, is opaqueError's.
type opaqueProvider struct{ p Provider }

func (o opaqueProvider) Complete(ctx context.Context, req *Request) (*Response, error) {
	r, err := o.p.Complete(ctx, req)
	return r, opaqueError(err)
}

func (o opaqueProvider) Stream(ctx context.Context, req *Request) (Stream, error) {
	s, err := o.p.Stream(ctx, req)
	if err != nil {
		return nil, opaqueError(err)
	}
	return opaqueStream{s}, nil
}

func (o opaqueProvider) Models(ctx context.Context) ([]string, error) {
	m, err := o.p.Models(ctx)
	return m, opaqueError(err)
}

type opaqueStream struct{ s Stream }

func (o opaqueStream) Next() (Delta, error) {
	d, err := o.s.Next()
	return d, opaqueError(err)
}

func (o opaqueStream) Close() error { return o.s.Close() }
