//! CSC API 2.2.0.0 `credentials/create` and `credentials/delete` bodies.
