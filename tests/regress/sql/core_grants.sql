-- df.grant_usage / df.revoke_usage (SPEC §5).
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_grant_admin LOGIN;
CREATE ROLE regress_grant_user LOGIN;
CREATE ROLE "Regress Mixed" LOGIN;

CREATE FUNCTION regress_privs(r text) RETURNS TABLE(object text, privilege text, granted boolean, grantable boolean)
LANGUAGE sql AS $$
    SELECT 'schema df', 'USAGE', has_schema_privilege(r, 'df', 'USAGE'),
           has_schema_privilege(r, 'df', 'USAGE WITH GRANT OPTION')
    UNION ALL
    SELECT t, 'SELECT', has_table_privilege(r, t, 'SELECT'), has_table_privilege(r, t, 'SELECT WITH GRANT OPTION')
      FROM unnest(ARRAY['df.instances', 'df.nodes', 'df.vars', 'df._worker_epoch']) AS t
    UNION ALL
    SELECT t, 'INSERT', has_table_privilege(r, t, 'INSERT'), false
      FROM unnest(ARRAY['df.instances', 'df.nodes', 'df.vars']) AS t
    UNION ALL
    SELECT f, 'EXECUTE', has_function_privilege(r, f, 'EXECUTE'),
           has_function_privilege(r, f, 'EXECUTE WITH GRANT OPTION')
      FROM unnest(ARRAY['df.http(text,text,text,jsonb,integer)', 'df.grant_usage(text,boolean,boolean)',
                        'df.revoke_usage(text)']) AS f
$$;

SELECT * FROM regress_privs('regress_grant_user');
SELECT df.grant_usage('regress_grant_user');
SELECT * FROM regress_privs('regress_grant_user');
SELECT df.grant_usage('regress_grant_user', include_http => true);
SELECT * FROM regress_privs('regress_grant_user') WHERE object LIKE 'df.http%';

-- Role names are quoted as identifiers.
SELECT df.grant_usage('Regress Mixed');
SELECT granted FROM regress_privs('Regress Mixed') WHERE object = 'schema df';
-- Unknown roles fail on the first GRANT.
SELECT df.grant_usage('regress_no_such_role');
SELECT df.grant_usage(NULL);

-- with_grant lets an admin pass usage on.
SELECT df.grant_usage('regress_grant_admin', true, true);
SELECT * FROM regress_privs('regress_grant_admin');
REVOKE ALL ON SCHEMA df FROM regress_grant_user CASCADE;
SELECT df.revoke_usage('regress_grant_user');
SET ROLE regress_grant_admin;
SELECT df.grant_usage('regress_grant_user');
RESET ROLE;
SELECT granted FROM regress_privs('regress_grant_user') WHERE object = 'schema df';
-- A user without the grant option cannot pass usage on.
SET ROLE regress_grant_user;
SELECT df.grant_usage('regress_grant_admin');
RESET ROLE;

-- Revoking removes what the revoker granted (CASCADE takes the admin's grants too).
SELECT df.revoke_usage('regress_grant_admin');
SELECT * FROM regress_privs('regress_grant_admin');
SELECT granted FROM regress_privs('regress_grant_user') WHERE object = 'schema df';

-- 'public' grants to PUBLIC.
SELECT df.grant_usage('public');
SELECT has_schema_privilege('regress_grant_user', 'df', 'USAGE') AS via_public;
SELECT df.revoke_usage('public');
SELECT has_schema_privilege('regress_grant_user', 'df', 'USAGE') AS via_public;
-- Only the exact word 'public' means PUBLIC: role names are case-sensitive
-- strings, and a role may really be called "Public".
CREATE ROLE "Public" LOGIN;
SELECT df.grant_usage('Public');
SELECT has_schema_privilege('Public', 'df', 'USAGE') AS role_public,
       has_table_privilege('Public', 'df.instances', 'SELECT') AS role_public_select,
       has_schema_privilege('regress_grant_user', 'df', 'USAGE') AS via_public;
SELECT df.grant_usage('PUBLIC');
SELECT df.revoke_usage('Public');
SELECT has_schema_privilege('Public', 'df', 'USAGE') AS role_public;
DROP ROLE "Public";

SELECT df.revoke_usage('regress_grant_user');
SELECT df.revoke_usage('Regress Mixed');
DROP FUNCTION regress_privs(text);
DROP ROLE regress_grant_admin;
DROP ROLE regress_grant_user;
DROP ROLE "Regress Mixed";
