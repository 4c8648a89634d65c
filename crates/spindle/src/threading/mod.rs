//! `threading`: threads and the synchronisation primitives between them.
