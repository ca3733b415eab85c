"""Asset factories: one set of assets per configured monitor."""
