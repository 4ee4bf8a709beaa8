CREATE TABLE "report_schedules" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"period" text NOT NULL,
	"time_zone" text NOT NULL,
	"bot_id" text,
	"send_hour" integer NOT NULL,
	"channels" jsonb NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "report_sends" (
	"id" text PRIMARY KEY NOT NULL,
	"schedule_id" text NOT NULL,
	"period_start" timestamp with time zone NOT NULL,
	"period_end" timestamp with time zone NOT NULL,
	"manual" boolean NOT NULL,
	"report" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "spend_alert_rules" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"bot_id" text,
	"model" text,
	"per" text NOT NULL,
	"multiple" numeric(10, 2) NOT NULL,
	"min_spend_usd" numeric(24, 12) NOT NULL,
	"baseline_days" integer NOT NULL,
	"channels" jsonb NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "spend_alerts" (
	"id" text PRIMARY KEY NOT NULL,
	"rule_id" text NOT NULL,
	"bot_id" text NOT NULL,
	"model" text NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"spent_usd" numeric(24, 12) NOT NULL,
	"baseline_usd" numeric(24, 12) NOT NULL,
	"threshold_usd" numeric(24, 12) NOT NULL,
	"partial" boolean NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
DROP INDEX "budget_alerts_once_idx";--> statement-breakpoint
ALTER TABLE "budget_alerts" ADD COLUMN "user_id" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "budget_deliveries" ADD COLUMN "source" text DEFAULT 'budget' NOT NULL;--> statement-breakpoint
ALTER TABLE "budgets" ADD COLUMN "action" text DEFAULT 'alert' NOT NULL;--> statement-breakpoint
ALTER TABLE "budgets" ADD COLUMN "per_user_key" text;--> statement-breakpoint
ALTER TABLE "usage_daily" ADD COLUMN "input_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_daily" ADD COLUMN "output_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_daily" ADD COLUMN "web_search_requests" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_daily_bots" ADD COLUMN "input_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_daily_bots" ADD COLUMN "output_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_daily_bots" ADD COLUMN "web_search_requests" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_daily_models" ADD COLUMN "input_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_daily_models" ADD COLUMN "output_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_daily_models" ADD COLUMN "web_search_requests" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "input_audio_tokens" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "output_audio_tokens" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "web_search_requests" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "service_tier" text DEFAULT 'standard' NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "inference_geo" text;--> statement-breakpoint
ALTER TABLE "usage_hourly" ADD COLUMN "input_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_hourly" ADD COLUMN "output_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_hourly" ADD COLUMN "web_search_requests" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_hourly_bots" ADD COLUMN "input_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_hourly_bots" ADD COLUMN "output_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_hourly_bots" ADD COLUMN "web_search_requests" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_hourly_models" ADD COLUMN "input_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_hourly_models" ADD COLUMN "output_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_hourly_models" ADD COLUMN "web_search_requests" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_quarter_hourly_models" ADD COLUMN "input_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_quarter_hourly_models" ADD COLUMN "output_audio_tokens" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_quarter_hourly_models" ADD COLUMN "web_search_requests" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "report_sends_once_idx" ON "report_sends" USING btree ("schedule_id","period_start") WHERE NOT manual;--> statement-breakpoint
CREATE INDEX "report_sends_schedule_idx" ON "report_sends" USING btree ("schedule_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "spend_alerts_once_idx" ON "spend_alerts" USING btree ("rule_id","bot_id","model","hour");--> statement-breakpoint
CREATE INDEX "spend_alerts_created_at_idx" ON "spend_alerts" USING btree ("created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "budget_alerts_once_idx" ON "budget_alerts" USING btree ("budget_id","period_start","kind","threshold","limit_usd","user_id");