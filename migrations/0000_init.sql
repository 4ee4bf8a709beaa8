CREATE TABLE "api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"prefix" text NOT NULL,
	"hash" text NOT NULL,
	"scopes" text[] NOT NULL,
	"bot_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "price_overrides" (
	"id" text PRIMARY KEY NOT NULL,
	"provider" text NOT NULL,
	"model_pattern" text NOT NULL,
	"effective_from" timestamp with time zone NOT NULL,
	"effective_to" timestamp with time zone,
	"input" numeric(24, 12) NOT NULL,
	"output" numeric(24, 12) NOT NULL,
	"cache_read" numeric(24, 12),
	"cache_write" numeric(24, 12),
	"cache_write_1h" numeric(24, 12),
	"reasoning" numeric(24, 12),
	"tiers" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"note" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "usage_events" (
	"id" text NOT NULL,
	"bot_id" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"provider" text NOT NULL,
	"model" text NOT NULL,
	"request_type" text NOT NULL,
	"success" boolean NOT NULL,
	"error_message" text,
	"input_tokens" integer NOT NULL,
	"output_tokens" integer NOT NULL,
	"total_tokens" integer NOT NULL,
	"cache_read_tokens" integer DEFAULT 0 NOT NULL,
	"cache_write_tokens" integer DEFAULT 0 NOT NULL,
	"cache_write_1h_tokens" integer DEFAULT 0 NOT NULL,
	"reasoning_tokens" integer DEFAULT 0 NOT NULL,
	"latency_ms" integer,
	"cost" numeric(24, 12),
	"reported_cost" numeric(24, 12),
	"priced" boolean DEFAULT false NOT NULL,
	"price_source" text,
	"metadata" jsonb,
	CONSTRAINT "usage_events_pkey" PRIMARY KEY("bot_id","id")
);
--> statement-breakpoint
CREATE TABLE "usage_hourly" (
	"hour" timestamp with time zone NOT NULL,
	"bot_id" text NOT NULL,
	"provider" text NOT NULL,
	"model" text NOT NULL,
	"request_type" text NOT NULL,
	"success" boolean NOT NULL,
	"calls" bigint DEFAULT 0 NOT NULL,
	"input_tokens" bigint DEFAULT 0 NOT NULL,
	"output_tokens" bigint DEFAULT 0 NOT NULL,
	"total_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_read_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_write_tokens" bigint DEFAULT 0 NOT NULL,
	"reasoning_tokens" bigint DEFAULT 0 NOT NULL,
	"cost" numeric(30, 12) DEFAULT '0' NOT NULL,
	"unpriced_calls" bigint DEFAULT 0 NOT NULL,
	"unpriced_input_tokens" bigint DEFAULT 0 NOT NULL,
	"unpriced_output_tokens" bigint DEFAULT 0 NOT NULL,
	"latency_sum_ms" bigint DEFAULT 0 NOT NULL,
	"latency_count" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "usage_hourly_pkey" PRIMARY KEY("hour","bot_id","provider","model","request_type","success")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_hash_idx" ON "api_keys" USING btree ("hash");--> statement-breakpoint
CREATE INDEX "price_overrides_provider_idx" ON "price_overrides" USING btree ("provider");--> statement-breakpoint
CREATE INDEX "usage_events_created_at_idx" ON "usage_events" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "usage_events_bot_created_at_idx" ON "usage_events" USING btree ("bot_id","created_at");