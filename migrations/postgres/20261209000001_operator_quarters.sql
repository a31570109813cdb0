-- The operator report over a period whose start and intervals are on quarter hours reads,
-- per operator and quarter hour, the time each closed span (one whose operator changed
-- again) spent in its state there and the logins that began there, instead of cutting
-- every span of the period at interval edges and sorting the pieces. `operator_quarters`
-- keeps those sums; the trigger below follows every insert, update and delete of
-- `operator_spans` (themselves kept by the trigger on `operator_events`), in the same
-- transaction. Spans still open, and the part of the period after its last quarter edge,
-- are cut at report time from the spans.
CREATE TABLE operator_quarters (
    operator TEXT NOT NULL,
    -- Unix ms, a multiple of 900,000
    quarter_start_ms BIGINT NOT NULL,
    -- any status but offline
    status TEXT NOT NULL,
    -- the break's reason; '' for other states and breaks without one
    reason TEXT NOT NULL,
    -- time in this state within the quarter
    state_ms BIGINT NOT NULL,
    -- spans that began in the quarter from offline or from no earlier change
    logins BIGINT NOT NULL,
    PRIMARY KEY (operator, quarter_start_ms, status, reason)
);

-- The spans still open, which the rollup leaves out: at most one per operator.
CREATE INDEX operator_spans_open ON operator_spans (operator) WHERE next_at_ms IS NULL;

-- A span's share of each quarter it overlaps (the login in its first one), added with
-- `sign` 1 when the span appears and -1 when it goes. A span's length is from its change to
-- the operator's next one; a next change written with an earlier time makes it 0 long (the
-- span path counts it so too). Offline and open spans have no share.
CREATE FUNCTION operator_quarters_add(span operator_spans, sign BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF span.status = 'offline' OR span.next_at_ms IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO operator_quarters AS q (operator, quarter_start_ms, status, reason, state_ms, logins)
    SELECT span.operator, k.start_ms, span.status,
        CASE WHEN span.status = 'break' THEN COALESCE(span.reason, '') ELSE '' END,
        sign * CASE WHEN span.next_at_ms <= span.at_ms THEN 0
          ELSE LEAST(span.next_at_ms, k.start_ms + 900000) - GREATEST(span.at_ms, k.start_ms) END,
        sign * CASE WHEN k.n = 0 AND (span.previous_status IS NULL OR span.previous_status = 'offline')
          THEN 1 ELSE 0 END
    FROM (SELECT n, (span.at_ms / 900000 + n) * 900000 AS start_ms FROM generate_series(0::BIGINT,
        CASE WHEN span.next_at_ms > span.at_ms THEN (span.next_at_ms - 1) / 900000 - span.at_ms / 900000
          ELSE 0 END) AS n) AS k
    ON CONFLICT (operator, quarter_start_ms, status, reason) DO UPDATE
        SET state_ms = q.state_ms + excluded.state_ms, logins = q.logins + excluded.logins;
    -- Sums at nothing are not kept (reports skip them either way).
    DELETE FROM operator_quarters WHERE operator = span.operator AND state_ms = 0 AND logins = 0
        AND quarter_start_ms >= span.at_ms / 900000 * 900000
        AND quarter_start_ms <= GREATEST(span.next_at_ms - 1, span.at_ms) / 900000 * 900000;
END;
$$;

CREATE FUNCTION operator_quarters_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM operator_quarters_add(OLD, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM operator_quarters_add(NEW, 1);
    END IF;
    RETURN NULL;
END;
$$;

-- Created before the sums of the spans already kept: the trigger's lock on operator_spans
-- holds other writers off until this migration commits, so no span is missed or counted
-- twice.
CREATE TRIGGER operator_quarters_follow AFTER INSERT OR UPDATE OR DELETE ON operator_spans
    FOR EACH ROW EXECUTE FUNCTION operator_quarters_follow();

INSERT INTO operator_quarters (operator, quarter_start_ms, status, reason, state_ms, logins)
SELECT s.operator, (s.at_ms / 900000 + k.n) * 900000, s.status,
    CASE WHEN s.status = 'break' THEN COALESCE(s.reason, '') ELSE '' END,
    SUM(CASE WHEN s.next_at_ms <= s.at_ms THEN 0
      ELSE LEAST(s.next_at_ms, (s.at_ms / 900000 + k.n + 1) * 900000)
         - GREATEST(s.at_ms, (s.at_ms / 900000 + k.n) * 900000) END),
    SUM(CASE WHEN k.n = 0 AND (s.previous_status IS NULL OR s.previous_status = 'offline') THEN 1 ELSE 0 END)
FROM operator_spans s CROSS JOIN LATERAL generate_series(0::BIGINT,
    CASE WHEN s.next_at_ms > s.at_ms THEN (s.next_at_ms - 1) / 900000 - s.at_ms / 900000 ELSE 0 END) AS k (n)
WHERE s.status <> 'offline' AND s.next_at_ms IS NOT NULL
GROUP BY 1, 2, 3, 4
HAVING SUM(CASE WHEN s.next_at_ms <= s.at_ms THEN 0 ELSE 1 END) > 0
    OR SUM(CASE WHEN k.n = 0 AND (s.previous_status IS NULL OR s.previous_status = 'offline') THEN 1 ELSE 0 END) > 0;
