"""What a confluent-kafka producer script counts: deliveries and their errors, and the
one JSON line it prints at the end."""

import json


class Deliveries:
    def __init__(self):
        self.delivered = 0
        self.errors = []

    def done(self, error, _message):
        if error is not None:
            self.errors.append(str(error))
        else:
            self.delivered += 1

    def report(self, producer, timeout):
        left = producer.flush(timeout)
        print(json.dumps({"delivered": self.delivered, "errors": self.errors[:10], "undelivered": left}), flush=True)
