-- The queue report's AHT adds each answered call's wrap-up: the `wrap_up` state that followed
-- the operator's `busy` state on the call, until the operator's next change. Looking it up in
-- `operator_spans` for every answered call cost ~4 µs a call (most of a day's report);
-- `calls.wrap_up_ms` keeps it instead: the summed length of the call's closed wrap-ups, NULL
-- while it has none. The triggers below keep it in the same transaction as every write of
-- `operator_spans` (themselves kept by the triggers on `operator_events`) and of `calls`,
-- whatever order the rows are written in.
ALTER TABLE calls ADD COLUMN wrap_up_ms BIGINT;

-- A span that is (or was) a closed wrap-up after a call recomputes that call's sum (through
-- `operator_spans_wrap_ups`); other spans change nothing.
CREATE TRIGGER call_wrap_ups_span_insert AFTER INSERT ON operator_spans
WHEN NEW.status = 'wrap_up' AND NEW.previous_status = 'busy' AND NEW.next_at_ms IS NOT NULL BEGIN
    UPDATE calls SET wrap_up_ms = (
        SELECT SUM(s.next_at_ms - s.at_ms) FROM operator_spans s
        WHERE s.previous_call_id = calls.call_id AND s.status = 'wrap_up' AND s.previous_status = 'busy'
          AND s.next_at_ms IS NOT NULL)
    WHERE call_id = NEW.previous_call_id;
END;

CREATE TRIGGER call_wrap_ups_span_delete AFTER DELETE ON operator_spans
WHEN OLD.status = 'wrap_up' AND OLD.previous_status = 'busy' AND OLD.next_at_ms IS NOT NULL BEGIN
    UPDATE calls SET wrap_up_ms = (
        SELECT SUM(s.next_at_ms - s.at_ms) FROM operator_spans s
        WHERE s.previous_call_id = calls.call_id AND s.status = 'wrap_up' AND s.previous_status = 'busy'
          AND s.next_at_ms IS NOT NULL)
    WHERE call_id = OLD.previous_call_id;
END;

CREATE TRIGGER call_wrap_ups_span_update AFTER UPDATE ON operator_spans
WHEN (OLD.status = 'wrap_up' AND OLD.previous_status = 'busy' AND OLD.next_at_ms IS NOT NULL)
  OR (NEW.status = 'wrap_up' AND NEW.previous_status = 'busy' AND NEW.next_at_ms IS NOT NULL) BEGIN
    UPDATE calls SET wrap_up_ms = (
        SELECT SUM(s.next_at_ms - s.at_ms) FROM operator_spans s
        WHERE s.previous_call_id = calls.call_id AND s.status = 'wrap_up' AND s.previous_status = 'busy'
          AND s.next_at_ms IS NOT NULL)
    WHERE call_id IN (OLD.previous_call_id, NEW.previous_call_id);
END;

-- A call row written after its wrap-up's spans (history rows may arrive in any order)
-- takes the sum at once.
CREATE TRIGGER call_wrap_ups_call_insert AFTER INSERT ON calls
WHEN EXISTS (SELECT 1 FROM operator_spans s WHERE s.previous_call_id = NEW.call_id
    AND s.status = 'wrap_up' AND s.previous_status = 'busy' AND s.next_at_ms IS NOT NULL) BEGIN
    UPDATE calls SET wrap_up_ms = (
        SELECT SUM(s.next_at_ms - s.at_ms) FROM operator_spans s
        WHERE s.previous_call_id = NEW.call_id AND s.status = 'wrap_up' AND s.previous_status = 'busy'
          AND s.next_at_ms IS NOT NULL)
    WHERE log_index = NEW.log_index AND seq = NEW.seq;
END;

CREATE TRIGGER call_wrap_ups_call_update AFTER UPDATE OF call_id ON calls BEGIN
    UPDATE calls SET wrap_up_ms = (
        SELECT SUM(s.next_at_ms - s.at_ms) FROM operator_spans s
        WHERE s.previous_call_id = NEW.call_id AND s.status = 'wrap_up' AND s.previous_status = 'busy'
          AND s.next_at_ms IS NOT NULL)
    WHERE log_index = NEW.log_index AND seq = NEW.seq;
END;

-- The wrap-ups already written.
UPDATE calls SET wrap_up_ms = (
    SELECT SUM(s.next_at_ms - s.at_ms) FROM operator_spans s
    WHERE s.previous_call_id = calls.call_id AND s.status = 'wrap_up' AND s.previous_status = 'busy'
      AND s.next_at_ms IS NOT NULL)
WHERE call_id IN (SELECT previous_call_id FROM operator_spans
    WHERE status = 'wrap_up' AND previous_status = 'busy' AND next_at_ms IS NOT NULL);
