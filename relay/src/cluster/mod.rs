//! The cluster configuration: several relay nodes on one PostgreSQL database,
//! with NATS between them (`crate::bus`), behind any load balancer. Being
//! built; a relay cannot be configured this way yet.
//!
//! - [`arbiter`]: PostgreSQL as the one arbiter of the nodes' races: node
//!   leases (with fencing, and a reap done once), devices per node, busy rows,
//!   calls, every deadline on the database's clock.
//! - [`node`]: one node's runtime: it holds its lease, reaps dead nodes, records
//!   its devices, and keeps its hub's view of who is online through the other
//!   nodes: a hint over the bus after each change ("hint, then read": the
//!   hint names users, the database says their presence), and a periodic
//!   reconcile that repairs what a lost hint left stale.
//!
//! Not built yet: routing calls between nodes (a call's messages to the node of
//! each device), the busy rows taken for every call, resuming on another node
//! after one died, the configuration itself (`bus_url`), and its benchmark.

pub mod arbiter;
pub mod node;

pub use arbiter::{Arbiter, CallRow, DeviceAt, Placed, Reaped};
pub use node::{Node, Timing};
