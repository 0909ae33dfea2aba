"""Creates the Kafka topics strata reads and writes, idempotently.

usage: create-topics.py BOOTSTRAP

Debezium creates its own topics (topic.creation.* in debezium/); the broker
has auto.create.topics.enable=false, so every other topic is made here.
"""
import sys

from confluent_kafka.admin import AdminClient, NewTopic

# name: (partitions, config)
TOPICS = {
    "strata.transactions": (4, {}),
    "strata.features": (4, {}),
    "strata.scores": (4, {}),
    "strata.alerts": (1, {}),
    "strata.dlq": (1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
}


def main():
    admin = AdminClient({"bootstrap.servers": sys.argv[1]})
    existing = set(admin.list_topics(timeout=30).topics)
    wanted = [NewTopic(name, num_partitions=p, replication_factor=1, config=c)
              for name, (p, c) in TOPICS.items() if name not in existing]
    if not wanted:
        return 0
    for name, fut in admin.create_topics(wanted, request_timeout=30).items():
        try:
            fut.result()
        except Exception as exc:  # already created by a concurrent run is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                print(f"create-topics: {name}: {exc}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
