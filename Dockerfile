# The extender's image: `docker build -t hiatus:0.1.0 .` (see deploy/).
FROM node:20-alpine AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY testing ./testing
COPY test ./test
COPY benchmarks ./benchmarks
COPY demo ./demo
RUN npx tsc -p tsconfig.json

FROM node:20-alpine
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/src ./dist/src
USER 65532:65532
EXPOSE 8888 8443
ENTRYPOINT ["node", "dist/src/main.js"]
