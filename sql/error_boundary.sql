-- Every kind of error raised in C++ arrives as an ordinary SQL error, and the backend
-- goes on working: the next statement in the same session succeeds.
\set SHOW_CONTEXT never
SELECT orchestration.selftest_error_boundary('none');
SELECT orchestration.selftest_error_boundary('user_error');
SELECT 1 AS still_working;
SELECT orchestration.selftest_error_boundary('std_exception');
SELECT 2 AS still_working;
SELECT orchestration.selftest_error_boundary('bad_alloc');
SELECT 3 AS still_working;
SELECT orchestration.selftest_error_boundary('unknown');
SELECT 4 AS still_working;
-- A Postgres error raised under C++ frames keeps its own SQLSTATE and message.
SELECT orchestration.selftest_error_boundary('postgres_error');
SELECT 5 AS still_working;
-- Inside a transaction the error rolls back to a savepoint like any other.
BEGIN;
CREATE TABLE boundary_probe (x int);
SAVEPOINT before_error;
SELECT orchestration.selftest_error_boundary('std_exception');
ROLLBACK TO SAVEPOINT before_error;
INSERT INTO boundary_probe VALUES (1);
SELECT * FROM boundary_probe;
COMMIT;
-- The SQLSTATE survives the crossing: catch them by condition name in PL/pgSQL.
DO $$
BEGIN
  PERFORM orchestration.selftest_error_boundary('postgres_error');
EXCEPTION WHEN invalid_text_representation THEN
  RAISE NOTICE 'caught invalid_text_representation: %', SQLERRM;
END $$;
DO $$
BEGIN
  PERFORM orchestration.selftest_error_boundary('user_error');
EXCEPTION WHEN invalid_parameter_value THEN
  RAISE NOTICE 'caught invalid_parameter_value: %', SQLERRM;
END $$;
DO $$
BEGIN
  PERFORM orchestration.selftest_error_boundary('std_exception');
EXCEPTION WHEN internal_error THEN
  RAISE NOTICE 'caught internal_error: %', SQLERRM;
END $$;
-- Many errors in a row leak nothing that breaks the session (each one allocates).
DO $$
BEGIN
  FOR i IN 1..1000 LOOP
    BEGIN
      PERFORM orchestration.selftest_error_boundary('user_error');
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
  END LOOP;
END $$;
SELECT orchestration.selftest_error_boundary('nonsense');
DROP TABLE boundary_probe;
