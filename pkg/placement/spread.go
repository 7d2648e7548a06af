package placement

// Spread says which of a unit's n usable replicas serves token row of a
// dispatch: rows go round-robin from offset (the dispatcher's counter,
// advanced once per call), so that a hot unit's rows split evenly over its
// replicas and successive calls start on different ones. The coordinator's
// dispatcher and the simulator (switchyard sim) both route by it.
func Spread(offset uint64, row, n int) int { return int((offset + uint64(row)) % uint64(n)) }
