-- Schema version 6: the pickup codes of parked calls, for the whole cluster.
-- A call parked on one node can be picked up through any node: the code is
-- taken here before the node's hub parks the call under it (so no two nodes
-- give out one code), and the node a pickup arrives at looks up which node
-- carries the call. UNLOGGED like the other cluster rows; a code goes with its
-- call's row, or when the call is picked up or taken back.
CREATE UNLOGGED TABLE cluster_parked (
    code SMALLINT PRIMARY KEY CHECK (code BETWEEN 10 AND 99),
    call_id TEXT NOT NULL REFERENCES cluster_calls (id) ON DELETE CASCADE
);
CREATE INDEX cluster_parked_call ON cluster_parked (call_id);
