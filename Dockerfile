# Build stage: compile the release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin switchboard

# Runtime stage: the binary alone on a slim base.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/switchboard --create-home switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
USER switchboard
WORKDIR /var/lib/switchboard
ENV SWITCHBOARD_HTTP_LISTEN=0.0.0.0:8080 \
    SWITCHBOARD_SIP_LISTEN=0.0.0.0:5060 \
    DATABASE_URL=sqlite:///var/lib/switchboard/switchboard.db
EXPOSE 5060/udp 5060/tcp 8080/tcp
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 && head -n 1 <&3 | grep -q " 200 "'
ENTRYPOINT ["switchboard"]
CMD ["serve"]
