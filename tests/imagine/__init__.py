"""Stories of the imagine plugin (image jobs, fair queue, quotas) with a fake back end."""
