-- The operator report over a period whose start and intervals are on quarter hours reads,
-- per operator and quarter hour, the time each closed span (one whose operator changed
-- again) spent in its state there and the logins that began there, instead of cutting
-- every span of the period at interval edges and sorting the pieces. `operator_quarters`
-- keeps those sums; the triggers below follow every insert, update and delete of
-- `operator_spans` (themselves kept by the triggers on `operator_events`), in the same
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
) WITHOUT ROWID;

-- 0..9,999: a span's quarters are counted as high * 10,000 + low (SQLite allows no
-- recursive WITH inside a trigger), enough for spans of 285 years.
CREATE TABLE quarter_numbers (n INTEGER PRIMARY KEY);
INSERT INTO quarter_numbers (n)
WITH RECURSIVE counted (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM counted WHERE n < 9999)
SELECT n FROM counted;

-- The spans still open, which the rollup leaves out: at most one per operator.
CREATE INDEX operator_spans_open ON operator_spans (operator) WHERE next_at_ms IS NULL;

-- A span's share of each quarter it overlaps (the login in its first one), added with
-- `sign` 1 when the span appears and -1 when it goes. A span's length is from its change to
-- the operator's next one; a next change written with an earlier time makes it 0 long (the
-- span path counts it so too).
CREATE TRIGGER operator_quarters_insert AFTER INSERT ON operator_spans
WHEN NEW.status <> 'offline' AND NEW.next_at_ms IS NOT NULL BEGIN
    INSERT INTO operator_quarters (operator, quarter_start_ms, status, reason, state_ms, logins)
    SELECT NEW.operator, q.start_ms, NEW.status,
        CASE WHEN NEW.status = 'break' THEN COALESCE(NEW.reason, '') ELSE '' END,
        CASE WHEN NEW.next_at_ms <= NEW.at_ms THEN 0
          ELSE (CASE WHEN NEW.next_at_ms < q.start_ms + 900000 THEN NEW.next_at_ms ELSE q.start_ms + 900000 END)
             - (CASE WHEN NEW.at_ms > q.start_ms THEN NEW.at_ms ELSE q.start_ms END) END,
        CASE WHEN q.k = 0 AND (NEW.previous_status IS NULL OR NEW.previous_status = 'offline') THEN 1 ELSE 0 END
    FROM (SELECT hi.n * 10000 + lo.n AS k, (NEW.at_ms / 900000 + hi.n * 10000 + lo.n) * 900000 AS start_ms
        FROM quarter_numbers hi JOIN quarter_numbers lo
        WHERE hi.n <= (CASE WHEN NEW.next_at_ms > NEW.at_ms THEN (NEW.next_at_ms - 1) / 900000 - NEW.at_ms / 900000
              ELSE 0 END) / 10000
          AND lo.n <= (CASE WHEN NEW.next_at_ms > NEW.at_ms THEN (NEW.next_at_ms - 1) / 900000 - NEW.at_ms / 900000
              ELSE 0 END) - hi.n * 10000) AS q
    WHERE true
    ON CONFLICT (operator, quarter_start_ms, status, reason) DO UPDATE
        SET state_ms = state_ms + excluded.state_ms, logins = logins + excluded.logins;
    -- Sums at nothing are not kept (reports skip them either way).
    DELETE FROM operator_quarters WHERE operator = NEW.operator AND state_ms = 0 AND logins = 0
        AND quarter_start_ms >= NEW.at_ms / 900000 * 900000
        AND quarter_start_ms <= (CASE WHEN NEW.next_at_ms > NEW.at_ms THEN NEW.next_at_ms - 1 ELSE NEW.at_ms END)
            / 900000 * 900000;
END;

CREATE TRIGGER operator_quarters_delete AFTER DELETE ON operator_spans
WHEN OLD.status <> 'offline' AND OLD.next_at_ms IS NOT NULL BEGIN
    INSERT INTO operator_quarters (operator, quarter_start_ms, status, reason, state_ms, logins)
    SELECT OLD.operator, q.start_ms, OLD.status,
        CASE WHEN OLD.status = 'break' THEN COALESCE(OLD.reason, '') ELSE '' END,
        -(CASE WHEN OLD.next_at_ms <= OLD.at_ms THEN 0
          ELSE (CASE WHEN OLD.next_at_ms < q.start_ms + 900000 THEN OLD.next_at_ms ELSE q.start_ms + 900000 END)
             - (CASE WHEN OLD.at_ms > q.start_ms THEN OLD.at_ms ELSE q.start_ms END) END),
        -(CASE WHEN q.k = 0 AND (OLD.previous_status IS NULL OR OLD.previous_status = 'offline') THEN 1 ELSE 0 END)
    FROM (SELECT hi.n * 10000 + lo.n AS k, (OLD.at_ms / 900000 + hi.n * 10000 + lo.n) * 900000 AS start_ms
        FROM quarter_numbers hi JOIN quarter_numbers lo
        WHERE hi.n <= (CASE WHEN OLD.next_at_ms > OLD.at_ms THEN (OLD.next_at_ms - 1) / 900000 - OLD.at_ms / 900000
              ELSE 0 END) / 10000
          AND lo.n <= (CASE WHEN OLD.next_at_ms > OLD.at_ms THEN (OLD.next_at_ms - 1) / 900000 - OLD.at_ms / 900000
              ELSE 0 END) - hi.n * 10000) AS q
    WHERE true
    ON CONFLICT (operator, quarter_start_ms, status, reason) DO UPDATE
        SET state_ms = state_ms + excluded.state_ms, logins = logins + excluded.logins;
    -- Sums at nothing are not kept (reports skip them either way).
    DELETE FROM operator_quarters WHERE operator = OLD.operator AND state_ms = 0 AND logins = 0
        AND quarter_start_ms >= OLD.at_ms / 900000 * 900000
        AND quarter_start_ms <= (CASE WHEN OLD.next_at_ms > OLD.at_ms THEN OLD.next_at_ms - 1 ELSE OLD.at_ms END)
            / 900000 * 900000;
END;

-- A span updated (its next change came, or the change before it moved): its old share goes,
-- its new one comes.
CREATE TRIGGER operator_quarters_update AFTER UPDATE ON operator_spans BEGIN
    INSERT INTO operator_quarters (operator, quarter_start_ms, status, reason, state_ms, logins)
    SELECT OLD.operator, q.start_ms, OLD.status,
        CASE WHEN OLD.status = 'break' THEN COALESCE(OLD.reason, '') ELSE '' END,
        -(CASE WHEN OLD.next_at_ms <= OLD.at_ms THEN 0
          ELSE (CASE WHEN OLD.next_at_ms < q.start_ms + 900000 THEN OLD.next_at_ms ELSE q.start_ms + 900000 END)
             - (CASE WHEN OLD.at_ms > q.start_ms THEN OLD.at_ms ELSE q.start_ms END) END),
        -(CASE WHEN q.k = 0 AND (OLD.previous_status IS NULL OR OLD.previous_status = 'offline') THEN 1 ELSE 0 END)
    FROM (SELECT hi.n * 10000 + lo.n AS k, (OLD.at_ms / 900000 + hi.n * 10000 + lo.n) * 900000 AS start_ms
        FROM quarter_numbers hi JOIN quarter_numbers lo
        WHERE hi.n <= (CASE WHEN OLD.next_at_ms > OLD.at_ms THEN (OLD.next_at_ms - 1) / 900000 - OLD.at_ms / 900000
              ELSE 0 END) / 10000
          AND lo.n <= (CASE WHEN OLD.next_at_ms > OLD.at_ms THEN (OLD.next_at_ms - 1) / 900000 - OLD.at_ms / 900000
              ELSE 0 END) - hi.n * 10000) AS q
    WHERE OLD.status <> 'offline' AND OLD.next_at_ms IS NOT NULL
    ON CONFLICT (operator, quarter_start_ms, status, reason) DO UPDATE
        SET state_ms = state_ms + excluded.state_ms, logins = logins + excluded.logins;
    INSERT INTO operator_quarters (operator, quarter_start_ms, status, reason, state_ms, logins)
    SELECT NEW.operator, q.start_ms, NEW.status,
        CASE WHEN NEW.status = 'break' THEN COALESCE(NEW.reason, '') ELSE '' END,
        CASE WHEN NEW.next_at_ms <= NEW.at_ms THEN 0
          ELSE (CASE WHEN NEW.next_at_ms < q.start_ms + 900000 THEN NEW.next_at_ms ELSE q.start_ms + 900000 END)
             - (CASE WHEN NEW.at_ms > q.start_ms THEN NEW.at_ms ELSE q.start_ms END) END,
        CASE WHEN q.k = 0 AND (NEW.previous_status IS NULL OR NEW.previous_status = 'offline') THEN 1 ELSE 0 END
    FROM (SELECT hi.n * 10000 + lo.n AS k, (NEW.at_ms / 900000 + hi.n * 10000 + lo.n) * 900000 AS start_ms
        FROM quarter_numbers hi JOIN quarter_numbers lo
        WHERE hi.n <= (CASE WHEN NEW.next_at_ms > NEW.at_ms THEN (NEW.next_at_ms - 1) / 900000 - NEW.at_ms / 900000
              ELSE 0 END) / 10000
          AND lo.n <= (CASE WHEN NEW.next_at_ms > NEW.at_ms THEN (NEW.next_at_ms - 1) / 900000 - NEW.at_ms / 900000
              ELSE 0 END) - hi.n * 10000) AS q
    WHERE NEW.status <> 'offline' AND NEW.next_at_ms IS NOT NULL
    ON CONFLICT (operator, quarter_start_ms, status, reason) DO UPDATE
        SET state_ms = state_ms + excluded.state_ms, logins = logins + excluded.logins;
    -- Sums at nothing are not kept (reports skip them either way).
    DELETE FROM operator_quarters WHERE operator = OLD.operator AND state_ms = 0 AND logins = 0
        AND quarter_start_ms >= OLD.at_ms / 900000 * 900000
        AND quarter_start_ms <= (CASE WHEN OLD.next_at_ms > OLD.at_ms THEN OLD.next_at_ms - 1 ELSE OLD.at_ms END)
            / 900000 * 900000;
    DELETE FROM operator_quarters WHERE operator = NEW.operator AND state_ms = 0 AND logins = 0
        AND quarter_start_ms >= NEW.at_ms / 900000 * 900000
        AND quarter_start_ms <= (CASE WHEN NEW.next_at_ms > NEW.at_ms THEN NEW.next_at_ms - 1 ELSE NEW.at_ms END)
            / 900000 * 900000;
END;

-- The spans already kept (the triggers above follow every change from here on; SQLite
-- runs one writer at a time, so none is missed or counted twice).
INSERT INTO operator_quarters (operator, quarter_start_ms, status, reason, state_ms, logins)
SELECT s.operator, (s.at_ms / 900000 + hi.n * 10000 + lo.n) * 900000 AS start_ms, s.status,
    CASE WHEN s.status = 'break' THEN COALESCE(s.reason, '') ELSE '' END AS reason,
    SUM(CASE WHEN s.next_at_ms <= s.at_ms THEN 0
      ELSE (CASE WHEN s.next_at_ms < (s.at_ms / 900000 + hi.n * 10000 + lo.n + 1) * 900000 THEN s.next_at_ms
              ELSE (s.at_ms / 900000 + hi.n * 10000 + lo.n + 1) * 900000 END)
         - (CASE WHEN s.at_ms > (s.at_ms / 900000 + hi.n * 10000 + lo.n) * 900000 THEN s.at_ms
              ELSE (s.at_ms / 900000 + hi.n * 10000 + lo.n) * 900000 END) END),
    SUM(CASE WHEN hi.n = 0 AND lo.n = 0 AND (s.previous_status IS NULL OR s.previous_status = 'offline')
      THEN 1 ELSE 0 END)
FROM operator_spans s JOIN quarter_numbers hi JOIN quarter_numbers lo
WHERE s.status <> 'offline' AND s.next_at_ms IS NOT NULL
  AND hi.n <= (CASE WHEN s.next_at_ms > s.at_ms THEN (s.next_at_ms - 1) / 900000 - s.at_ms / 900000 ELSE 0 END) / 10000
  AND lo.n <= (CASE WHEN s.next_at_ms > s.at_ms THEN (s.next_at_ms - 1) / 900000 - s.at_ms / 900000 ELSE 0 END)
      - hi.n * 10000
GROUP BY 1, 2, 3, 4
HAVING SUM(CASE WHEN s.next_at_ms <= s.at_ms THEN 0 ELSE 1 END) > 0
    OR SUM(CASE WHEN hi.n = 0 AND lo.n = 0 AND (s.previous_status IS NULL OR s.previous_status = 'offline')
      THEN 1 ELSE 0 END) > 0;
