-- The queue report's AHT adds each answered call's wrap-up: the `wrap_up` state that followed
-- the operator's `busy` state on the call, until the operator's next change. Looking it up in
-- `operator_spans` for every answered call cost ~4 µs a call (most of a day's report);
-- `calls.wrap_up_ms` keeps it instead: the summed length of the call's closed wrap-ups, NULL
-- while it has none. The triggers below keep it in the same transaction as every write of
-- `operator_spans` (themselves kept by the trigger on `operator_events`) and of `calls`,
-- whatever order the rows are written in.
ALTER TABLE calls ADD COLUMN wrap_up_ms BIGINT;

-- One call id's closed wrap-ups, summed (NULL: none). Uses `operator_spans_wrap_ups`.
CREATE FUNCTION call_wrap_up_ms(id TEXT) RETURNS BIGINT LANGUAGE sql STABLE AS $$
    SELECT SUM(next_at_ms - at_ms) FROM operator_spans
    WHERE previous_call_id = id AND status = 'wrap_up' AND previous_status = 'busy'
      AND next_at_ms IS NOT NULL
$$;

-- A span that is (or was) a closed wrap-up after a call recomputes that call's sum; other
-- spans change nothing.
CREATE FUNCTION call_wrap_ups_follow_spans() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_id TEXT;
    new_id TEXT;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF OLD.status = 'wrap_up' AND OLD.previous_status = 'busy' AND OLD.next_at_ms IS NOT NULL THEN
            old_id := OLD.previous_call_id;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.status = 'wrap_up' AND NEW.previous_status = 'busy' AND NEW.next_at_ms IS NOT NULL THEN
            new_id := NEW.previous_call_id;
        END IF;
    END IF;
    IF old_id IS NOT NULL THEN
        UPDATE calls SET wrap_up_ms = call_wrap_up_ms(old_id) WHERE call_id = old_id;
    END IF;
    IF new_id IS NOT NULL AND new_id IS DISTINCT FROM old_id THEN
        UPDATE calls SET wrap_up_ms = call_wrap_up_ms(new_id) WHERE call_id = new_id;
    END IF;
    RETURN NULL;
END;
$$;

-- A call row written after its wrap-up's spans (history rows may arrive in any order)
-- takes the sum at once.
CREATE FUNCTION call_wrap_ups_follow_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.wrap_up_ms := call_wrap_up_ms(NEW.call_id);
    RETURN NEW;
END;
$$;

-- Created before the backfill: the triggers' locks hold other writers off until this
-- migration commits, so no wrap-up is missed.
CREATE TRIGGER call_wrap_ups_follow_spans AFTER INSERT OR UPDATE OR DELETE ON operator_spans
    FOR EACH ROW EXECUTE FUNCTION call_wrap_ups_follow_spans();
CREATE TRIGGER call_wrap_ups_follow_calls BEFORE INSERT OR UPDATE OF call_id ON calls
    FOR EACH ROW EXECUTE FUNCTION call_wrap_ups_follow_calls();

-- The wrap-ups already written.
UPDATE calls c SET wrap_up_ms = w.wrap_up_ms
FROM (SELECT previous_call_id, SUM(next_at_ms - at_ms) AS wrap_up_ms FROM operator_spans
      WHERE status = 'wrap_up' AND previous_status = 'busy' AND next_at_ms IS NOT NULL
        AND previous_call_id IS NOT NULL
      GROUP BY previous_call_id) AS w
WHERE c.call_id = w.previous_call_id;
