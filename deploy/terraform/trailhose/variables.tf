variable "name" {
  description = "Name prefix for the queue, DLQ, log group and policy."
  type        = string
  default     = "trailhose"
}

variable "trail_bucket_name" {
  description = "S3 bucket CloudTrail delivers to (the notification source)."
  type        = string
}

variable "trail_prefix" {
  description = "Key prefix of the trail's logs, e.g. \"AWSLogs/\" or \"myprefix/AWSLogs/\"."
  type        = string
  default     = "AWSLogs/"
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the trail's log files (SSE-KMS), if any."
  type        = string
  default     = null
}

variable "log_group_name" {
  description = "CloudWatch Logs group the worker writes to (templates create more on demand)."
  type        = string
  default     = "/cloudtrail/org"
}

variable "retention_in_days" {
  type    = number
  default = 365
}

variable "visibility_timeout_seconds" {
  description = "Must exceed the worker's heartbeat interval; the worker extends it while it works."
  type        = number
  default     = 300
}

variable "max_receive_count" {
  description = "Receives before SQS moves a message to the DLQ."
  type        = number
  default     = 10
}

variable "assume_role_arns" {
  description = "Cross-account roles the worker may assume to read other buckets."
  type        = list(string)
  default     = []
}

variable "worker_memory_limit_mib" {
  description = "Memory limit for the worker's container (MiB), for the task or pod you run it in: at least the worst case `trailhose check-config` prints for its config (890 MiB for config/aws.toml, rounded up to 1024; crates/cli/tests/deploy.rs checks the default)."
  type        = number
  default     = 1024
}
