"""S3 buckets as locations: SigV4 signing, configuration and a small standard-library client."""
