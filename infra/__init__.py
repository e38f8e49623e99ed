"""Deploys the declared functions to AWS (Lambda, Amazon MQ, IAM, Secrets Manager) with boto3."""
