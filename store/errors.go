package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrNotFound: no row of that id in the tenant (including a row that belongs to another
	// tenant: the caller cannot tell the two apart).
	ErrNotFound = errors.New("store: not found")
	// ErrUnavailable: the database cannot be reached; the request may be retried later.
	ErrUnavailable = errors.New("store: database unavailable")
)

// FieldError names one field of a model that is not acceptable, in the JSON path a client
// sent it under ("voice.speed", "edges[2].to").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError is a model that breaks its invariants; nothing was written.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "store: invalid: " + strings.Join(parts, "; ")
}

// ConflictError is a write refused because of other rows: a unique value already taken, or a
// row still referenced by others. Nothing was written.
type ConflictError struct {
	Field   string
	Message string
}

func (e *ConflictError) Error() string { return "store: conflict: " + e.Field + ": " + e.Message }

// fieldErrors collects FieldErrors while a model validates itself.
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (fe fieldErrors) err() error {
	if len(fe) == 0 {
		return nil
	}
	return &ValidationError{Fields: fe}
}

// classify turns driver errors into the store's errors: a missing row, a lost database, a
// unique or foreign-key violation. Other errors pass through wrapped.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505":
			return &ConflictError{Field: uniqueField(pgErr.ConstraintName, pgErr.Detail), Message: "already exists"}
		case pgErr.Code == "23503":
			return &ConflictError{Field: "id", Message: "still referenced by other resources"}
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57"), pgErr.Code == "53300":
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return fmt.Errorf("store: %w", err)
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &ConflictError{Field: uniqueField("", sqErr.Error()), Message: "already exists"}
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return &ConflictError{Field: "id", Message: "still referenced by other resources"}
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return fmt.Errorf("store: %w", err)
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, sql.ErrConnDone) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed") {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("store: %w", err)
}

// uniqueField guesses, from a constraint name or message, which column's value was taken.
func uniqueField(constraint, msg string) string {
	s := constraint + " " + msg
	for _, col := range []string{"slug", "email", "number", "name", "hash"} {
		if strings.Contains(s, col) {
			return col
		}
	}
	return "id"
}
