package postgres

import (
	"context"
	"time"
)

// ClaimDeletion takes the code's deletion claim for holder until ttl from
// now, when nobody holds it or the claim held has expired (its holder died).
// Whoever holds the claim is the only one asking Seam to delete the code.
// One statement, so two claimants cannot both win: the primary key makes
// the second INSERT conflict, and the conflicting row is replaced only when
// its lease is over (the UPDATE runs on the row as locked, so it sees the
// first claimant's committed lease).
func (s *Store) ClaimDeletion(ctx context.Context, id, holder string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `INSERT INTO deletion_claims (access_code_id, holder, expires_at)
		VALUES ($1, $2, now() + $3::interval)
		ON CONFLICT (access_code_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
			WHERE deletion_claims.expires_at < now()`, id, holder, ttl)
	if err != nil {
		return false, unavailable(err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseDeletion gives the claim back, if holder still holds it.
func (s *Store) ReleaseDeletion(ctx context.Context, id, holder string) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `DELETE FROM deletion_claims WHERE access_code_id = $1 AND holder = $2`, id, holder); err != nil {
		return unavailable(err)
	}
	return nil
}
