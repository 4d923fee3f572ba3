"""Primary-backup consensus: one signing primary proposes, backups check, apply and acknowledge."""
