# The usage service. Runs TypeScript directly with tsx (no build step to drift from the source).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY tsconfig.json drizzle.config.ts ./
COPY src ./src
COPY bots ./bots
COPY migrations ./migrations
USER node
EXPOSE 3000
CMD ["node", "--import=tsx", "src/server.ts"]
