-- Interval reports need, for each operator state change, the operator's change before it
-- (a wrap-up counts after a call; a login is a change from offline) and the time of the one
-- after it (when the state ended). Computing that with LAG/LEAD at every report sorted all
-- the period's changes; `operator_spans` keeps it, one row per `operator_events` row, kept
-- by the triggers below in the same transaction as every insert, update or delete of
-- `operator_events`, whatever the order the rows are written in.
CREATE TABLE operator_spans (
    log_index BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    operator TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    call_id TEXT,
    at_ms BIGINT NOT NULL,
    -- the operator's change before this one (by log_index, seq); NULL: none
    previous_status TEXT,
    previous_call_id TEXT,
    previous_at_ms BIGINT,
    -- when the operator's next change came; NULL: none yet
    next_at_ms BIGINT,
    -- reports read each operator's spans in a period
    PRIMARY KEY (operator, at_ms, log_index, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX operator_spans_key ON operator_spans (log_index, seq);
-- The queue report's wrap-ups (a `wrap_up` right after a `busy` on a call), looked up for each
-- answered call by its id (the same index as PostgreSQL's).
CREATE INDEX operator_spans_wrap_ups ON operator_spans (previous_call_id, previous_at_ms, next_at_ms)
    WHERE status = 'wrap_up' AND previous_status = 'busy';
-- The queue report counts calls by when they entered.
CREATE INDEX calls_entered ON calls (entered_at_ms);

-- The neighbours are looked up by (operator, log_index, seq).
CREATE INDEX operator_events_operator_key ON operator_events (operator, log_index, seq);
DROP INDEX operator_events_operator;

CREATE TRIGGER operator_spans_delete AFTER DELETE ON operator_events BEGIN
    DELETE FROM operator_spans WHERE log_index = OLD.log_index AND seq = OLD.seq;
    -- The change before the removed one now ends at the change after it.
    UPDATE operator_spans SET next_at_ms = (
        SELECT n.at_ms FROM operator_events n WHERE n.operator = OLD.operator
          AND (n.log_index > OLD.log_index OR (n.log_index = OLD.log_index AND n.seq > OLD.seq))
        ORDER BY n.log_index, n.seq LIMIT 1)
    WHERE (log_index, seq) = (
        SELECT p.log_index, p.seq FROM operator_events p WHERE p.operator = OLD.operator
          AND (p.log_index < OLD.log_index OR (p.log_index = OLD.log_index AND p.seq < OLD.seq))
        ORDER BY p.log_index DESC, p.seq DESC LIMIT 1);
    -- The change after it now follows the change before it.
    UPDATE operator_spans SET (previous_status, previous_call_id, previous_at_ms) = (
        SELECT p.status, p.call_id, p.at_ms FROM operator_events p WHERE p.operator = OLD.operator
          AND (p.log_index < OLD.log_index OR (p.log_index = OLD.log_index AND p.seq < OLD.seq))
        ORDER BY p.log_index DESC, p.seq DESC LIMIT 1)
    WHERE (log_index, seq) = (
        SELECT n.log_index, n.seq FROM operator_events n WHERE n.operator = OLD.operator
          AND (n.log_index > OLD.log_index OR (n.log_index = OLD.log_index AND n.seq > OLD.seq))
        ORDER BY n.log_index, n.seq LIMIT 1);
END;

CREATE TRIGGER operator_spans_insert AFTER INSERT ON operator_events BEGIN
    INSERT INTO operator_spans (log_index, seq, operator, status, reason, call_id, at_ms,
        previous_status, previous_call_id, previous_at_ms, next_at_ms)
    SELECT NEW.log_index, NEW.seq, NEW.operator, NEW.status, NEW.reason, NEW.call_id, NEW.at_ms,
        p.status, p.call_id, p.at_ms, n.at_ms
    FROM (SELECT 1) AS one
    LEFT JOIN (SELECT status, call_id, at_ms FROM operator_events WHERE operator = NEW.operator
          AND (log_index < NEW.log_index OR (log_index = NEW.log_index AND seq < NEW.seq))
        ORDER BY log_index DESC, seq DESC LIMIT 1) AS p ON 1 = 1
    LEFT JOIN (SELECT at_ms FROM operator_events WHERE operator = NEW.operator
          AND (log_index > NEW.log_index OR (log_index = NEW.log_index AND seq > NEW.seq))
        ORDER BY log_index, seq LIMIT 1) AS n ON 1 = 1;
    UPDATE operator_spans SET next_at_ms = NEW.at_ms
    WHERE (log_index, seq) = (
        SELECT p.log_index, p.seq FROM operator_events p WHERE p.operator = NEW.operator
          AND (p.log_index < NEW.log_index OR (p.log_index = NEW.log_index AND p.seq < NEW.seq))
        ORDER BY p.log_index DESC, p.seq DESC LIMIT 1);
    UPDATE operator_spans SET previous_status = NEW.status, previous_call_id = NEW.call_id,
        previous_at_ms = NEW.at_ms
    WHERE (log_index, seq) = (
        SELECT n.log_index, n.seq FROM operator_events n WHERE n.operator = NEW.operator
          AND (n.log_index > NEW.log_index OR (n.log_index = NEW.log_index AND n.seq > NEW.seq))
        ORDER BY n.log_index, n.seq LIMIT 1);
END;

-- History rows are never updated; should one be, its operators' spans are recomputed whole.
CREATE TRIGGER operator_spans_update AFTER UPDATE ON operator_events BEGIN
    DELETE FROM operator_spans WHERE operator IN (OLD.operator, NEW.operator)
        OR (log_index, seq) IN (SELECT log_index, seq FROM operator_events
            WHERE operator IN (OLD.operator, NEW.operator));
    INSERT INTO operator_spans (log_index, seq, operator, status, reason, call_id, at_ms,
        previous_status, previous_call_id, previous_at_ms, next_at_ms)
    SELECT log_index, seq, operator, status, reason, call_id, at_ms,
        LAG(status) OVER w, LAG(call_id) OVER w, LAG(at_ms) OVER w, LEAD(at_ms) OVER w
    FROM operator_events WHERE operator IN (OLD.operator, NEW.operator)
    WINDOW w AS (PARTITION BY operator ORDER BY log_index, seq);
END;

-- The changes already written.
INSERT INTO operator_spans (log_index, seq, operator, status, reason, call_id, at_ms,
    previous_status, previous_call_id, previous_at_ms, next_at_ms)
SELECT log_index, seq, operator, status, reason, call_id, at_ms,
    LAG(status) OVER w, LAG(call_id) OVER w, LAG(at_ms) OVER w, LEAD(at_ms) OVER w
FROM operator_events
WINDOW w AS (PARTITION BY operator ORDER BY log_index, seq);
