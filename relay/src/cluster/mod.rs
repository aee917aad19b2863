//! The cluster configuration: several relay nodes on one PostgreSQL database,
//! with NATS between them (`crate::bus`), behind any load balancer
//! (`serve --database-url ... --bus-url nats://...`; `docs/operations.md`,
//! "Several relay nodes"). How calls cross nodes is `crate::ws`'s `remote`
//! module.
//!
//! - [`arbiter`]: PostgreSQL as the one arbiter of the nodes' races: node
//!   leases (with fencing, and a reap done once), devices per node, busy rows,
//!   calls, pickup codes, sign-in counts, every deadline on the database's
//!   clock.
//! - [`node`]: one node's runtime: it holds its lease, reaps dead nodes, records
//!   its devices, and keeps its hub's view of who is online through the other
//!   nodes: a hint over the bus after each change ("hint, then read": the
//!   hint names users, the database says their presence), and a periodic
//!   reconcile that repairs what a lost hint left stale.

pub mod arbiter;
pub mod node;

pub use arbiter::{Arbiter, CallRow, DeviceAt, Placed, Reaped, Reserved};
pub use node::{Node, Timing};
