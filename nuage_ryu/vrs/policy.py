"""ACL policy compiler (phase 2 placeholder: filled in below)."""
