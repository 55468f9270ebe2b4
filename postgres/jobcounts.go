package postgres

import "context"

// JobCounts counts River's jobs in the given states by kind and state, for
// the metrics (codewatch_jobs). The states are those of jobs not finished
// and discarded: the index River fetches by (state first) and the one on
// finalized jobs find them without reading the completed jobs River keeps
// for a day.
func (s *Store) JobCounts(ctx context.Context, states []string) (map[[2]string]int64, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rs, err := s.pool.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job
		WHERE state = ANY($1::text[]::river_job_state[]) GROUP BY kind, state`, states)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rs.Close()
	out := map[[2]string]int64{}
	for rs.Next() {
		var kind, state string
		var n int64
		if err := rs.Scan(&kind, &state, &n); err != nil {
			return nil, unavailable(err)
		}
		out[[2]string{kind, state}] = n
	}
	if err := rs.Err(); err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}
