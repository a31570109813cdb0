-- Reports and the wallboard's figures for today read a period by time: the calls that ended
-- after its start, the operator state changes inside it. Without these, each such read
-- scanned every row ever written.
CREATE INDEX calls_ended ON calls (ended_at_ms);
CREATE INDEX operator_events_at ON operator_events (at_ms);
