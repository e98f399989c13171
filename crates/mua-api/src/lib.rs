//! The Kubernetes API of mua-operator: the custom resources (`crd`) and the table of critical operations
//! a Resource Guard protects with their Azure names (`operations`). It depends on nothing else of the
//! operator, so the kubectl plugin uses it alone.

pub mod crd;
pub mod operations;
