-- phasegate target schema for /vibe: nine tables, their indexes, no foreign keys.
-- Foreign keys to users(handle) come later (`phasegate fk add`, after Phase A).
-- Idempotent: every statement is IF NOT EXISTS, so applying twice changes nothing.
-- Column names and kinds must match src/phasegate/mappings/*.py (a test checks).

CREATE TABLE IF NOT EXISTS users (
    handle          text PRIMARY KEY,
    username        text,
    building        text,
    status          text,
    invited_by      text,
    invite_code     text,
    public_key      text,
    recovery_key    text,
    registry        text,
    key_rotated_at  timestamptz,
    created_at      timestamptz,
    updated_at      timestamptz,
    registered_at   timestamptz,
    first_active_at timestamptz,
    last_active_at  timestamptz,
    messages_sent   integer,
    genesis         boolean,
    verified        text,
    x_handle        text,
    github_handle   text,
    is_agent        boolean,
    operator        text,
    agent_type      text,
    capabilities    text[],
    model           text,
    registry_status text,
    metadata        jsonb
);

CREATE TABLE IF NOT EXISTS messages (
    id          text PRIMARY KEY,
    from_user   text NOT NULL,
    to_user     text NOT NULL,
    text        text,
    read        boolean,
    read_at     timestamptz,
    system_msg  boolean,
    payload     jsonb,
    metadata    jsonb,
    created_at  timestamptz
);
-- The thread query must read LEAST(from_user, to_user) = LEAST($1, $2)
-- AND GREATEST(from_user, to_user) = GREATEST($1, $2), in this order.
CREATE INDEX IF NOT EXISTS messages_thread_idx
    ON messages (LEAST(from_user, to_user), GREATEST(from_user, to_user), created_at DESC);
CREATE INDEX IF NOT EXISTS messages_inbox_idx ON messages (to_user, created_at DESC);
CREATE INDEX IF NOT EXISTS messages_unread_idx
    ON messages (to_user, created_at DESC) WHERE NOT read;
CREATE INDEX IF NOT EXISTS messages_outbox_idx ON messages (from_user, created_at DESC);

CREATE TABLE IF NOT EXISTS board_entries (
    id          text PRIMARY KEY,
    author      text NOT NULL,
    content     text,
    category    text,
    tags        text[],
    reactions   jsonb,
    comments    jsonb,
    metadata    jsonb,
    created_at  timestamptz
);
CREATE INDEX IF NOT EXISTS board_entries_feed_idx ON board_entries (created_at DESC);
CREATE INDEX IF NOT EXISTS board_entries_category_idx
    ON board_entries (category, created_at DESC);
CREATE INDEX IF NOT EXISTS board_entries_author_idx ON board_entries (author, created_at DESC);

CREATE TABLE IF NOT EXISTS streaks (
    handle          text PRIMARY KEY,
    current_streak  integer,
    longest_streak  integer,
    total_days      integer,
    last_active     date,
    active_days     date[],
    metadata        jsonb
);
CREATE INDEX IF NOT EXISTS streaks_leaderboard_idx ON streaks (current_streak DESC, handle);

CREATE TABLE IF NOT EXISTS achievements (
    handle      text NOT NULL,
    badge       text NOT NULL,
    unlocked_at timestamptz,
    PRIMARY KEY (handle, badge)
);

CREATE TABLE IF NOT EXISTS invites (
    code                text PRIMARY KEY,
    created_by          text,
    used_by             text,
    used_at             timestamptz,
    expires_at          timestamptz,
    created_at          timestamptz,
    status              text,
    bonus_for_inviting  jsonb,
    metadata            jsonb
);
CREATE INDEX IF NOT EXISTS invites_created_by_idx ON invites (created_by, created_at DESC);
CREATE INDEX IF NOT EXISTS invites_used_by_idx ON invites (used_by);

CREATE TABLE IF NOT EXISTS connections (
    from_user     text NOT NULL,
    to_user       text NOT NULL,
    status        text,
    requested_at  timestamptz,
    responded_at  timestamptz,
    message       text,
    grandfathered boolean,
    metadata      jsonb,
    PRIMARY KEY (from_user, to_user)
);
CREATE INDEX IF NOT EXISTS connections_to_status_idx
    ON connections (to_user, status, requested_at DESC);

CREATE TABLE IF NOT EXISTS friends (
    handle  text NOT NULL,
    friend  text NOT NULL,
    PRIMARY KEY (handle, friend)
);
CREATE INDEX IF NOT EXISTS friends_friend_idx ON friends (friend);

CREATE TABLE IF NOT EXISTS games (
    id          text PRIMARY KEY,
    game_type   text,
    players     text[],
    winner      text,
    state       jsonb,
    metadata    jsonb,
    created_at  timestamptz,
    updated_at  timestamptz
);
CREATE INDEX IF NOT EXISTS games_players_idx ON games USING gin (players);
-- fk add references users from winner: a user's delete cascades through this index
CREATE INDEX IF NOT EXISTS games_winner_idx ON games (winner);
