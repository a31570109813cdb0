-- Lineup history (SQLite). Mirrors migrations/postgres: same tables, columns and keys.
-- Every history row carries the Raft log index that produced it and its position among
-- that entry's effects (seq): (log_index, seq) is the idempotency key of every row.
-- Times are Unix milliseconds (BIGINT) so both dialects agree byte for byte.

-- One row per ended call (Effect::CallEnded).
CREATE TABLE calls (
    log_index BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    gate TEXT,
    priority SMALLINT NOT NULL,
    entry_site BIGINT NOT NULL,
    caller_number TEXT NOT NULL,
    caller_name TEXT NOT NULL,
    -- completed, transferred, abandoned, timed_out, full, closed, empty, exit_with_key,
    -- callback_failed, site_lost
    outcome TEXT NOT NULL,
    -- completed: who hung up; transferred: the target; exit_with_key: the key.
    outcome_detail TEXT,
    entered_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT NOT NULL,
    wait_ms BIGINT NOT NULL,
    handle_ms BIGINT,
    operator TEXT,
    operator_site BIGINT,
    callback_number TEXT,
    callback_attempts SMALLINT NOT NULL,
    PRIMARY KEY (log_index, seq)
);
CREATE INDEX calls_call_id ON calls (call_id);
CREATE INDEX calls_queue_ended ON calls (queue, ended_at_ms);
CREATE INDEX calls_operator_ended ON calls (operator, ended_at_ms);

-- Operator state changes (Effect::OperatorChanged). Sessions are derived from these:
-- a session starts when an operator leaves `offline` and ends when it returns to it.
CREATE TABLE operator_events (
    log_index BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    operator TEXT NOT NULL,
    -- offline, available, offered, busy, wrap_up, break
    status TEXT NOT NULL,
    -- break reason
    reason TEXT,
    -- the call of an offer or a connection
    call_id TEXT,
    site BIGINT,
    channel TEXT,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (log_index, seq)
);
CREATE INDEX operator_events_operator ON operator_events (operator, log_index);

-- Callback promises and attempts, from the CALLBACKREQUEST and CALLBACKFAILED verbs.
CREATE TABLE callback_events (
    log_index BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    gate TEXT,
    -- request (the promise), failed (one attempt did not reach the caller)
    event TEXT NOT NULL,
    -- request: the number to call back
    number TEXT,
    -- request: position when the promise was made
    position INTEGER,
    -- failed: the operator whose attempt failed (none when the promise ran out on a timer)
    operator TEXT,
    -- failed: attempts left after this one (0 ends the promise)
    attempts_left INTEGER,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (log_index, seq)
);
CREATE INDEX callback_events_call_id ON callback_events (call_id);

-- Asterisk's realtime queue_log in adaptive form (data1..data5), so existing reports work.
-- Events with more than five data fields keep the rest in data5, joined with '|'.
CREATE TABLE queue_log (
    log_index BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    -- UTC, `YYYY-MM-DD HH:MM:SS.SSS` (Asterisk with queue_log_realtime_use_gmt=yes)
    time TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    callid TEXT NOT NULL,
    -- `queue/gate` when the call came through a gate, as in the flat file
    queuename TEXT NOT NULL,
    agent TEXT NOT NULL,
    event TEXT NOT NULL,
    data1 TEXT NOT NULL DEFAULT '',
    data2 TEXT NOT NULL DEFAULT '',
    data3 TEXT NOT NULL DEFAULT '',
    data4 TEXT NOT NULL DEFAULT '',
    data5 TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (log_index, seq)
);
CREATE INDEX queue_log_time ON queue_log (at_ms);
CREATE INDEX queue_log_callid ON queue_log (callid);

-- Mirror of the routing configuration for SQL reports (replaced whole on each change; the
-- Raft log stays the source of truth). PIN hashes are never mirrored.
CREATE TABLE config_queues (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    default_priority SMALLINT NOT NULL,
    weight SMALLINT NOT NULL,
    max_waiting BIGINT NOT NULL,
    max_wait_ms BIGINT,
    service_level_ms BIGINT NOT NULL,
    wrap_up_ms BIGINT NOT NULL,
    schedule TEXT,
    -- the whole QueueConfig as JSON
    config_json TEXT NOT NULL,
    log_index BIGINT NOT NULL
);
CREATE TABLE config_gates (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    priority SMALLINT,
    whisper TEXT,
    config_json TEXT NOT NULL,
    log_index BIGINT NOT NULL
);
CREATE TABLE config_operators (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    site BIGINT NOT NULL,
    mode TEXT NOT NULL,
    endpoint TEXT,
    -- skills and memberships as JSON (memberships are also in config_operator_queues)
    config_json TEXT NOT NULL,
    log_index BIGINT NOT NULL
);
CREATE TABLE config_operator_queues (
    operator TEXT NOT NULL,
    queue TEXT NOT NULL,
    penalty SMALLINT NOT NULL,
    PRIMARY KEY (operator, queue)
);

-- The last log index whose effects are in this database; anything at or below is skipped.
CREATE TABLE history_watermark (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    log_index BIGINT NOT NULL
);
INSERT INTO history_watermark (id, log_index) VALUES (1, 0);

-- One row per operator session: from leaving `offline` to returning to it (logout_at_ms is
-- NULL while the session is open). Login and logout edges alternate per operator, so the
-- edge after a login is its logout.
CREATE VIEW operator_sessions AS
WITH marked AS (
    SELECT operator, site, status, at_ms, log_index, seq,
           LAG(status) OVER (PARTITION BY operator ORDER BY log_index, seq) AS previous_status
    FROM operator_events
), edges AS (
    SELECT operator, site, status, at_ms, log_index, seq
    FROM marked
    WHERE (status <> 'offline' AND (previous_status IS NULL OR previous_status = 'offline'))
       OR (status = 'offline' AND previous_status IS NOT NULL AND previous_status <> 'offline')
), paired AS (
    SELECT operator, site, status, at_ms, log_index,
           LEAD(at_ms) OVER (PARTITION BY operator ORDER BY log_index, seq) AS logout_at_ms
    FROM edges
)
SELECT operator, site, at_ms AS login_at_ms, logout_at_ms, log_index AS login_log_index
FROM paired
WHERE status <> 'offline';
