package postgres

import "context"

// SeedSweepCodes inserts the sweep benchmark's codes g in [from, to]: every
// stride-th code, up to overdue of them, a deletion awaiting removal past
// the removal timeout (see seedSweepCodesSQL). Like the other seeding
// statements (seed.go) it runs under the caller's context alone.
func (s *Store) SeedSweepCodes(ctx context.Context, from, to, stride, overdue int) error {
	_, err := s.pool.Exec(ctx, seedSweepCodesSQL, from, to, stride, overdue)
	return err
}

// seedSweepCodesSQL inserts access_codes rows g in [$1, $2] of a table of
// codes. Every $3-th code, up to $4 of them, is a deletion awaiting removal
// for longer than the removal timeout and not yet flagged; they are spread
// over the table as they would be in production. The rest, by a hash
// of g: 60% removed (terminal), 34% active, 3% deleted minutes ago and
// awaiting removal (not overdue yet), 1% already flagged removal_overdue, 1%
// delayed with trouble, 1% deleted_not_programmed.
const seedSweepCodesSQL = `
INSERT INTO access_codes (access_code_id, workspace_id, device_id, connected_account_id,
	deletion_state, on_device, needs_troubleshooting, troubleshooting_reason,
	troubleshooting_details, trouble_key, trouble_since, deletion_event_id,
	created_at, set_on_device_at, deleted_at, removed_from_device_at,
	last_event_at, terminal_at, last_alert_at, updated_at)
SELECT md5('code-' || g)::uuid::text,
	'680d7c60-0a92-4e78-85bd-cb45155576b9',
	md5('device-' || (g % 5000))::uuid::text,
	'9792ea0f-b48d-4fff-9d10-bb08bc1ca16a',
	CASE k WHEN 'overdue' THEN 'awaiting_removal' WHEN 'recent' THEN 'awaiting_removal'
		WHEN 'flagged' THEN 'awaiting_removal' WHEN 'removed' THEN 'removed'
		WHEN 'delayed' THEN 'delayed' WHEN 'dnp' THEN 'deleted_not_programmed' ELSE 'active' END,
	k NOT IN ('removed', 'dnp'),
	k IN ('flagged', 'delayed'),
	CASE k WHEN 'flagged' THEN 'removal_overdue' WHEN 'delayed' THEN 'removal_delayed' END,
	CASE WHEN k IN ('flagged', 'delayed') THEN
		'{"access_code_errors":[],"access_code_warnings":[],"device_errors":[],"device_warnings":[]}'::jsonb END,
	CASE k WHEN 'flagged' THEN 'overdue:' || del_id WHEN 'delayed' THEN md5('trouble-' || g)::uuid::text END,
	CASE k WHEN 'flagged' THEN deleted + interval '30 minutes' WHEN 'delayed' THEN deleted + interval '5 minutes' END,
	CASE WHEN k <> 'active' THEN del_id END,
	created,
	CASE WHEN k <> 'dnp' THEN created + interval '1 minute' END,
	deleted,
	CASE k WHEN 'removed' THEN deleted + ((g % 10) + 1) * interval '1 minute' END,
	COALESCE(deleted, created + interval '1 minute') + CASE k WHEN 'removed' THEN ((g % 10) + 1) * interval '1 minute' ELSE interval '0' END,
	CASE k WHEN 'removed' THEN deleted + ((g % 10) + 1) * interval '1 minute' WHEN 'dnp' THEN deleted END,
	CASE WHEN k IN ('flagged', 'delayed') THEN now() - interval '1 hour' END,
	now()
FROM (
	SELECT g, k, created, md5('deletion-' || g)::uuid::text AS del_id,
		CASE k
			WHEN 'overdue' THEN now() - interval '31 minutes' - (g % 2880) * interval '1 minute'
			WHEN 'recent'  THEN now() - (g % 1200) * interval '1 second'
			WHEN 'flagged' THEN now() - interval '2 hours' - (g % 600) * interval '1 minute'
			WHEN 'delayed' THEN now() - interval '10 minutes' - (g % 3000) * interval '1 second'
			WHEN 'removed' THEN created + ((g % 20) + 1) * interval '1 hour'
			WHEN 'dnp'     THEN created + interval '5 minutes'
		END AS deleted
	FROM (
		SELECT g,
			now() - ((g % 90) + 2) * interval '1 day' AS created,
			CASE
				WHEN g % $3 = 0 AND g / $3 <= $4 THEN 'overdue'
				WHEN h < 60 THEN 'removed'
				WHEN h < 94 THEN 'active'
				WHEN h < 97 THEN 'recent'
				WHEN h = 97 THEN 'flagged'
				WHEN h = 98 THEN 'delayed'
				ELSE 'dnp'
			END AS k
		FROM (SELECT g, (g * 2654435761) % 100 AS h FROM generate_series($1::bigint, $2::bigint) AS g) a
	) b
) c`
