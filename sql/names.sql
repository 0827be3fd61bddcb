-- The naming rules, as SQL sees them (the C++ core holds the one copy).
\set SHOW_CONTEXT never
SELECT orchestration.validate_name('agent', 'security-scanner_v1.2');
SELECT orchestration.validate_name('node', 'a');
SELECT orchestration.validate_name('secret', 'GITHUB_TOKEN');
SELECT orchestration.validate_name('agent', '');
SELECT orchestration.validate_name('agent', '_hidden');
SELECT orchestration.validate_name('agent', repeat('a', 64));
SELECT orchestration.validate_name('workflow', 'nightly scan');
SELECT orchestration.validate_name('secret', 'API-KEY');
SELECT orchestration.validate_name('secret', '2FA');
SELECT orchestration.validate_name('table', 'x');
