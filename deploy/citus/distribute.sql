-- Distributes the service's tables on Citus, with bot_id as the distribution column.
-- A PLAN for going past one Postgres (see docs/SCALING.md): not run by the service or its
-- migrations, and a no-op (one NOTICE) on a server without the citus extension.
--
-- Run it once on the coordinator, after the service has migrated the schema and before
-- traffic, in the schema the service uses (DATABASE_SCHEMA, default public):
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c 'SET search_path TO public' -f deploy/citus/distribute.sql
--
-- Idempotent: tables already known to Citus are skipped, so it can be re-run after a failure.

DO $$
DECLARE
  t text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
    RAISE NOTICE 'the citus extension is not installed in this database: nothing distributed';
    RETURN;
  END IF;

  -- Small, written by admins, read by every instance and joined with anything: one copy on
  -- every node. (budget_deliveries references budget_alerts, so alerts go first.)
  FOREACH t IN ARRAY ARRAY['api_keys', 'price_overrides', 'budgets', 'budget_alerts', 'budget_deliveries'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
      PERFORM create_reference_table(t);
    END IF;
  END LOOP;

  -- The event store and every rollup whose key starts with (time, bot_id): sharded by bot_id and
  -- co-located, so one bot's events and rollup rows live on one shard, and the ingest
  -- transaction that writes both touches the same shard for a single-bot batch. Every unique key
  -- (usage_events_pkey = (bot_id, id), each rollup's primary key) includes bot_id, which Citus
  -- requires for ON CONFLICT upserts on a distributed table.
  IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'usage_events'::regclass) THEN
    PERFORM create_distributed_table('usage_events', 'bot_id');
  END IF;
  FOREACH t IN ARRAY ARRAY['usage_hourly', 'usage_daily', 'usage_daily_bots'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
      PERFORM create_distributed_table(t, 'bot_id', colocate_with => 'usage_events');
    END IF;
  END LOOP;

  -- usage_daily_models is keyed by (day, provider, model, request_type, success), without
  -- bot_id: it cannot be co-located. It stays on the coordinator as a Citus local table (few
  -- rows per day); the plan in docs/SCALING.md is to derive it from usage_daily asynchronously
  -- before the coordinator's write rate becomes the limit.
  IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'usage_daily_models'::regclass) THEN
    PERFORM citus_add_local_table_to_metadata('usage_daily_models');
  END IF;
END
$$;
