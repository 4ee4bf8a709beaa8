DROP INDEX "budget_alerts_once_idx";--> statement-breakpoint
ALTER TABLE "budget_alerts" ADD COLUMN "user_id" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "budgets" ADD COLUMN "action" text DEFAULT 'alert' NOT NULL;--> statement-breakpoint
ALTER TABLE "budgets" ADD COLUMN "per_user_key" text;--> statement-breakpoint
CREATE UNIQUE INDEX "budget_alerts_once_idx" ON "budget_alerts" USING btree ("budget_id","period_start","kind","threshold","limit_usd","user_id");