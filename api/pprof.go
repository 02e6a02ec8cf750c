package api

import (
	"net/http"
	"net/http/pprof"
	runtimepprof "runtime/pprof"

	"github.com/switchboard-go/switchboard/store"
)

// The Go runtime's profiles (net/http/pprof's handlers) at /debug/pprof/, so that an
// operator can examine a slow node where it runs: CPU, heap, goroutines, mutex and block
// contention, an execution trace. They exist only when the node is started with them
// (Config.Pprof, SWITCHBOARD_PPROF); off, the paths are not found. On, only the operator (an
// admin key of the default tenant) may read them: a profile shows the node's internals and
// taking one costs the node CPU.
//
// (Importing net/http/pprof also registers its handlers on http.DefaultServeMux; the node
// never serves that mux, so these routes, behind the key check, are the only way in.)

func (s *Server) pprofRoutes() []route {
	if !s.cfg.Pprof {
		return nil
	}
	const tag = "Profiles"
	return []route{
		{Method: http.MethodGet, Path: "/debug/pprof/", Tag: tag, Summary: "List the node's runtime profiles (operators only; on with SWITCHBOARD_PPROF)",
			Scope: store.ScopeAdmin, Status: http.StatusOK, Raw: true, Handle: s.pprofIndex},
		{Method: http.MethodGet, Path: "/debug/pprof/{profile}", Tag: tag,
			Summary: "A runtime profile in pprof's format: profile (CPU, ?seconds=30), heap, allocs, goroutine, mutex, block, threadcreate, trace (?seconds=1), cmdline, symbol (operators only)",
			Scope:   store.ScopeAdmin, Status: http.StatusOK, Raw: true, ContentType: "application/octet-stream",
			Query: []param{
				{Name: "seconds", Description: "how long to sample (profile, trace) or the interval of a delta profile (heap, allocs, mutex, block)", Integer: true},
				{Name: "debug", Description: "1 or 2: a text rendering instead of the binary profile", Integer: true},
				{Name: "gc", Description: "1: collect garbage before a heap profile", Integer: true},
			},
			Handle: s.pprofProfile},
	}
}

// pprofOperator refuses everyone but the operator.
func pprofOperator(p *Principal) error {
	if !p.Operator {
		return &Error{Status: http.StatusForbidden, Code: codeAuthorization, Message: "Profiles are the operator's: use an admin key of the default tenant"}
	}
	return nil
}

func (s *Server) pprofIndex(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := pprofOperator(p); err != nil {
		return err
	}
	// The index's pattern takes every path below it; only the index itself is one.
	if r.URL.Path != "/debug/pprof/" {
		return errRouteNotFound
	}
	pprof.Index(w, r)
	return nil
}

func (s *Server) pprofProfile(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := pprofOperator(p); err != nil {
		return err
	}
	switch name := r.PathValue("profile"); name {
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	default:
		if runtimepprof.Lookup(name) == nil {
			return errNotFound("Profile " + name)
		}
		pprof.Handler(name).ServeHTTP(w, r)
	}
	return nil
}
