//! One reconciler per CRD and the context they share (clients, metrics, clock).
