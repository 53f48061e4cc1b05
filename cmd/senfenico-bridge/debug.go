package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startDebugServer serves Go's profiler on its own listener when
// DEBUG_ADDR is set. It is separate from the webhook listener so that the
// profiles (which reveal memory contents' shape and timings) never sit on the
// port Senfenico reaches; operators bind it to loopback. It returns a stop
// func that closes the listener.
func startDebugServer(addr string, logger *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("debug listener stopped", slog.Any("err", err))
		}
	}()
	logger.Info("debug listener (pprof) serving", slog.String("addr", ln.Addr().String()))
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		logger.Warn("the debug listener is reachable from other hosts; profiles reveal internals and cost CPU on demand, keep DEBUG_ADDR on loopback",
			slog.String("addr", ln.Addr().String()))
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			// A profile still being taken (they run for seconds) must not
			// outlive the process's own shutdown.
			_ = srv.Close()
		}
	}, nil
}
