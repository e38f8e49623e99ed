"""Runs RabbitMQ-triggered Lambda handlers locally with AWS's event, batching and failures."""
