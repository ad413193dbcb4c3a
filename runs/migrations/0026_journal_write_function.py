"""The executor's commit as one server-side function (PostgreSQL only).

A journal batch (the run's lease check, its compare-and-swaps, the step rows, the
transcript events, the locks it releases) used to go to the server as five to eight
statements in a pipeline, then a COMMIT: two round trips, and on the client a
protocol exchange per statement, 1-3 ms of a commit that starts 98 steps. As one
call in its own implicit transaction it is one statement each way; a failed check
raises SQLSTATE ``PWSTA`` and rolls everything back, as the client's checks did.

The function finds its rows by key even on a new database without statistics
(``SET enable_seqscan = off`` is the function's own setting, restored when it
returns, so no session setting leaks through a pooler). A change to the write path
replaces the function in a migration of its own. On SQLite (the embedded default)
this migration does nothing.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION plannerweb_journal_write(
    p_run bigint,
    p_fence text,
    p_stamp timestamptz,
    p_run_move jsonb,
    p_alike jsonb,
    p_singles jsonb,
    p_single_ids bigint[],
    p_verdicts jsonb,
    p_events jsonb,
    p_unlock bigint[],
    p_unlock_all boolean
) RETURNS bigint[]
LANGUAGE plpgsql
SET enable_seqscan = off
AS $fn$
DECLARE
    v_owner text;
    v_changed bigint := 0;
    v_expected bigint := 0;
    v_n bigint;
    v_group jsonb;
    v_seqs bigint[];
BEGIN
    SELECT lease_owner INTO v_owner FROM runs_run WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % does not exist', p_run USING ERRCODE = 'PWSTA';
    END IF;
    IF p_fence IS NOT NULL AND v_owner IS DISTINCT FROM p_fence THEN
        RAISE EXCEPTION 'run % is leased to % now, not %', p_run,
            quote_literal(coalesce(nullif(v_owner, ''), 'nobody')), quote_literal(p_fence)
            USING ERRCODE = 'PWSTA';
    END IF;
    -- The run's move: [status, expected status, stop reason, whether it ends the run].
    IF p_run_move IS NOT NULL THEN
        IF (p_run_move->>3)::boolean THEN
            UPDATE runs_run SET status = p_run_move->>0, stop_reason = p_run_move->>2,
                finished_at = p_stamp, lease_owner = '', lease_expires_at = NULL
            WHERE id = p_run AND status = p_run_move->>1;
        ELSE
            UPDATE runs_run SET status = p_run_move->>0,
                started_at = COALESCE(started_at, p_stamp)
            WHERE id = p_run AND status = p_run_move->>1;
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'run % was not % any more', p_run, quote_literal(p_run_move->>1)
                USING ERRCODE = 'PWSTA';
        END IF;
    END IF;
    -- Steps that change alike: [status, attempts, error, started, finished, expected, [ids]].
    FOR v_group IN SELECT value FROM jsonb_array_elements(p_alike) LOOP
        UPDATE runs_step SET status = v_group->>0, attempts = (v_group->>1)::int,
            result = NULL, error = v_group->>2, started_at = (v_group->>3)::timestamptz,
            finished_at = (v_group->>4)::timestamptz
        WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(v_group->6)::bigint))
            AND status = v_group->>5;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_changed := v_changed + v_n;
        v_expected := v_expected + jsonb_array_length(v_group->6);
    END LOOP;
    -- Every other step: [status, attempts, result, error, started, finished, id, expected].
    IF cardinality(p_single_ids) > 0 THEN
        UPDATE runs_step AS s SET status = v.r->>0, attempts = (v.r->>1)::int,
            result = NULLIF(v.r->2, 'null'::jsonb), error = v.r->>3,
            started_at = (v.r->>4)::timestamptz, finished_at = (v.r->>5)::timestamptz
        FROM jsonb_array_elements(p_singles) AS v(r)
        WHERE s.id = ANY(p_single_ids) AND s.id = (v.r->>6)::bigint AND s.status = v.r->>7;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_changed := v_changed + v_n;
        v_expected := v_expected + cardinality(p_single_ids);
    END IF;
    IF v_changed <> v_expected THEN
        RAISE EXCEPTION '% step(s) of run % were not in the expected state',
            v_expected - v_changed, p_run USING ERRCODE = 'PWSTA';
    END IF;
    -- The evaluator's verdicts: [verdict, reason, step id].
    IF p_verdicts IS NOT NULL THEN
        UPDATE runs_step AS s SET verdict = v.r->>0, verdict_reason = v.r->>1
        FROM jsonb_array_elements(p_verdicts) AS v(r)
        WHERE s.id = (v.r->>2)::bigint;
    END IF;
    IF p_unlock_all THEN
        DELETE FROM runs_resourcelock WHERE run_id = p_run;
    ELSIF cardinality(p_unlock) > 0 THEN
        DELETE FROM runs_resourcelock WHERE step_id = ANY(p_unlock);
    END IF;
    -- The events, [role, kind, payload], numbered after the run's last seq: the run's
    -- row lock, taken first, orders every writer of the run.
    IF p_events IS NOT NULL THEN
        WITH inserted AS (
            INSERT INTO runs_transcriptevent (run_id, seq, role, kind, payload, created_at)
            SELECT p_run,
                (SELECT COALESCE(MAX(seq), 0) FROM runs_transcriptevent WHERE run_id = p_run)
                    + e.n,
                e.r->>0, e.r->>1, e.r->2, p_stamp
            FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(r, n)
            RETURNING seq
        )
        SELECT array_agg(seq::bigint ORDER BY seq) INTO v_seqs FROM inserted;
    END IF;
    RETURN COALESCE(v_seqs, '{}');
END
$fn$
"""

DROP = (
    "DROP FUNCTION IF EXISTS plannerweb_journal_write("
    "bigint, text, timestamptz, jsonb, jsonb, jsonb, bigint[], jsonb, jsonb, bigint[], boolean)"
)


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # its % are PL/pgSQL's, not placeholders


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("runs", "0025_step_fillfactor")]

    operations = [migrations.RunPython(create_function, drop_function)]
