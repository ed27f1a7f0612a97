output "queue_url" {
  value = aws_sqs_queue.notifications.id
}

output "dead_letter_queue_url" {
  value = aws_sqs_queue.dlq.id
}

output "worker_policy_arn" {
  value = aws_iam_policy.worker.arn
}

output "log_group_name" {
  value = aws_cloudwatch_log_group.trail.name
}

output "worker_memory_limit_mib" {
  description = "The memory limit the worker's container needs (MiB); see variables.tf."
  value       = var.worker_memory_limit_mib
}
