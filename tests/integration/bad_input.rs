//! Bad input on the HTTP API: path traversal, SQL metacharacters, oversized parameters.
