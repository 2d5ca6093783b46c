# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every heading, label and sentence of lifeboat's reports (report.html, recovery-report.md), in
English and Japanese, in one table: each entry is a pair (en, ja), so a text cannot exist in one
language only. The teams behind seed 003 write their recovery reports (復旧レポート) in Japanese.

Values put into a text ({value}, {step}, ...) are evidence data (run ids, table names, the
modules' own messages) and stay as they are; they are escaped where they are written."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

LANGUAGES = ('en', 'ja')

TEXTS = {
    # Titles and the header
    'title_drill': ('Recovery drill report', '復旧訓練レポート'),
    'title_restore': ('Restore report', 'リストアレポート'),
    'title_dr': ('Disaster recovery report', '災害復旧レポート'),
    'title_integrity': ('Integrity check report', '整合性チェックレポート'),
    'title_fleet': ('Fleet report', 'フリートレポート'),
    'status_passed': ('PASSED', '成功'),
    'status_failed': ('FAILED', '失敗'),
    'status_unknown': ('UNKNOWN', '不明'),
    'label_run': ('Run', '実行ID'),
    'label_host': ('Host', 'ホスト'),
    'label_database': ('Database', 'データベース'),
    'label_started': ('Started', '開始'),
    'label_finished': ('Finished', '終了'),
    'label_failed_step': ('Failed step', '失敗したステップ'),
    'label_failure': ('Failure', '失敗内容'),
    'label_fault': ('Fault', '障害'),
    'label_source': ('Restored from', '復元元'),
    'generated': ('Written by lifeboat on {time}; every figure comes from the run\'s evidence in this folder.',
                  'lifeboat が {time} に作成。数値はすべてこのフォルダーにある実行記録によるものです。'),
    # Key figures
    'heading_figures': ('Key figures', '主要な数値'),
    'figure_rto': ('RTO (recovery time)', 'RTO（復旧時間）'),
    'figure_rpo': ('RPO (data at risk)', 'RPO（失われうるデータの範囲）'),
    'figure_backup': ('Backup', 'バックアップ'),
    'figure_backup_size': ('Backup size', 'バックアップサイズ'),
    'figure_database_size': ('Database size (backup manifest)', 'データベースサイズ（マニフェスト記載）'),
    'figure_rows': ('Rows restored', '復元した行数'),
    'figure_rows_checked': ('Rows counted', '確認した行数'),
    'figure_checks': ('Checks passed', '合格したチェック'),
    'figure_checks_value': ('{passed} of {total}', '{total} 件中 {passed} 件'),
    'figure_hosts': ('Hosts ok', '正常なホスト'),
    'figure_duration_drill': ('Restore time', 'リストア時間'),
    'figure_duration_restore': ('Restore time', 'リストア時間'),
    'figure_duration_dr': ('Restore time', 'リストア時間'),
    'figure_duration_integrity': ('Check time', 'チェック時間'),
    'figure_duration_fleet': ('Longest restore', '最長のリストア時間'),
    # Targets
    'heading_targets': ('Against the targets', '目標との比較'),
    'target_met': ('met', '達成'),
    'target_missed': ('missed', '未達'),
    'target_unjudged': ('not judged', '判定なし'),
    'target_failed_run': ('not judged: the run failed', '判定なし: 実行が失敗'),
    'target_none': ('no target set', '目標未設定'),
    'target_value': ('target {value}', '目標 {value}'),
    'target_value_level': ('target {value} (level {level})', '目標 {value}・レベル {level}'),
    'target_minimal': ('minimal (no figure)', '最小限（数値なし）'),
    'target_line': ('{figure}: {value} against {target}: {verdict}', '{figure}: {value}（{target}）: {verdict}'),
    'target_not_measured': ('not measured', '未計測'),
    'targets_hint': ('Targets come from the inventory: lifeboat_rto_target_seconds, lifeboat_rpo_target_seconds '
                     'or lifeboat_recovery_level (RTO-1, RTO-4, RTO-24).',
                     '目標はインベントリーで設定します: lifeboat_rto_target_seconds、lifeboat_rpo_target_seconds '
                     'または lifeboat_recovery_level（RTO-1、RTO-4、RTO-24）。'),
    # Timeline
    'heading_timeline': ('Timeline (to scale)', 'タイムライン（実時間の比率）'),
    'timeline_note': ('Each bar is one step at its time; the space between bars is the time between steps '
                      '(Ansible starting the next task, writers stopping).',
                      '各バーは実行時刻に置いた 1 ステップです。バーの間隔はステップ間の時間'
                      '（Ansible の次タスク起動、書き込み停止など）です。'),
    'timeline_checks_note': ('Each bar is one check, one after another by its own time; checks may run side by side.',
                             '各バーは 1 件のチェックを所要時間の順に並べたものです。実際には並行して実行される場合があります。'),
    'timeline_empty': ('No step of this run has a measured time.', 'この実行には計測済みのステップがありません。'),
    'mark_fault': ('Fault', '障害発生'),
    'mark_recovery_start': ('Recovery starts', '復旧開始'),
    'mark_recovered': ('Recovered', '復旧完了'),
    'mark_ended': ('Ended (failed)', '終了（失敗）'),
    'mark_backup': ('Backup taken', 'バックアップ取得'),
    'mark_earlier': ('{value} earlier', '{value} 前'),
    'mark_target': ('{figure} target', '{figure} 目標'),
    'mark_target_off_scale': ('{figure} target {value}: beyond the right edge',
                              '{figure} 目標 {value}: 右端より先'),
    'axis_seconds': ('seconds from the start', '開始からの秒数'),
    # Steps of a drill, phases of a restore
    'step_load_sample_data': ('Load sample data', 'サンプルデータ投入'),
    'step_capture_baseline': ('Capture the baseline', 'ベースライン取得'),
    'step_backup': ('Back up', 'バックアップ'),
    'step_inject_fault': ('Inject the fault', '障害注入'),
    'step_restore': ('Restore', 'リストア'),
    'step_verify': ('Verify', '検証'),
    'step_pick_backup': ('Pick the backup', 'バックアップ選択'),
    'step_carry': ('Carry the backup here', 'バックアップ転送'),
    'phase_download': ('Download', 'ダウンロード'),
    'phase_check_files': ('Check the files', 'ファイル検証'),
    'phase_safety_backup': ('Safety backup', '退避用バックアップ'),
    'phase_restore': ('pg_restore', 'pg_restore'),
    'phase_analyze': ('ANALYZE', 'ANALYZE（統計情報更新）'),
    'phase_finish': ('Swap in and finish', '切り替えと仕上げ'),
    'phase_integrity': ('Integrity check', '整合性チェック'),
    'phase_files': ('Restore the folders', 'フォルダー復元'),
    # Tables, checks, fleet
    'heading_tables': ('Tables', 'テーブル'),
    'heading_checks': ('Checks', 'チェック'),
    'heading_hosts': ('Hosts', 'ホスト'),
    'heading_problems': ('Problems', '問題'),
    'column_table': ('Table', 'テーブル'),
    'column_expected': ('Expected', '期待値'),
    'column_found': ('Found', '実際'),
    'column_status': ('Status', '状態'),
    'column_check': ('Check', 'チェック'),
    'column_seconds': ('Seconds', '秒'),
    'column_result': ('Result', '結果'),
    'column_host': ('Host', 'ホスト'),
    'column_database': ('Database', 'データベース'),
    'column_backup': ('Backup', 'バックアップ'),
    'fleet_counts': ('{ok} ok, {failed} failed, {unreachable} unreachable',
                     '正常 {ok}、失敗 {failed}、到達不能 {unreachable}'),
    'state_ok': ('ok', '正常'),
    'state_failed': ('failed', '失敗'),
    'state_unreachable': ('unreachable', '到達不能'),
    'state_passed': ('passed', '合格'),
    'state_skipped': ('skipped', 'スキップ'),
    'state_error': ('could not run', '実行不可'),
    # Physical backups (pgBackRest, issue 19)
    'heading_physical': ('Physical backups (pgBackRest)', '物理バックアップ（pgBackRest）'),
    'physical_note': ('Each stanza is one PostgreSQL cluster. Exposure: how long ago the last WAL segment reached '
                      'the archive - what losing the server now would lose at most.',
                      'スタンザは PostgreSQL クラスター 1 つに対応します。露出時間: 最後の WAL セグメントがアーカイブに'
                      '届いてからの時間で、いまサーバーを失った場合に失われうる最大の範囲です。'),
    'column_stanza': ('Stanza', 'スタンザ'),
    'column_latest_backup': ('Latest backup', '最新のバックアップ'),
    'column_type': ('Type', '種類'),
    'column_age': ('Age', '経過時間'),
    'column_archive': ('WAL archive', 'WAL アーカイブ'),
    'column_exposure': ('Exposure', '露出時間'),
    'column_archiving': ('Archiving', 'アーカイブ処理'),
    'backup_type_full': ('full', 'フル'),
    'backup_type_diff': ('differential', '差分'),
    'backup_type_incr': ('incremental', '増分'),
    'archiving_ok': ('ok', '正常'),
    'archiving_failing': ('failing', '失敗中'),
    'physical_backups': ('{count} backup(s), the oldest from {oldest}', 'バックアップ {count} 件（最古 {oldest}）'),
    'rr_physical_line': ('stanza {stanza} on {host}: latest backup {label} ({type}, {age} old), WAL archive {archive}, '
                         'exposure {exposure}, archiving {archiving}',
                         '{host} のスタンザ {stanza}: 最新のバックアップ {label}（{type}、{age} 前）、WAL アーカイブ {archive}、'
                         '露出時間 {exposure}、アーカイブ処理 {archiving}'),
    'rr_physical_problem': ('problem: {problem}', '問題: {problem}'),
    # History
    'heading_history': ('History: the last {count} run(s)', '履歴: 直近 {count} 回'),
    'history_scope': ('Runs of {database} on {host} in this evidence folder, oldest on the left; the last bar is this run.',
                      'このフォルダーにある {host} の {database} の実行。左が古く、右端が今回です。'),
    'history_scope_all': ('Runs in this evidence folder, oldest on the left; the last bar is this run.',
                          'このフォルダーにある実行。左が古く、右端が今回です。'),
    'history_none': ('No earlier run in this evidence folder yet: the charts grow with each run.',
                     'このフォルダーにはまだ以前の実行がありません。実行のたびにグラフが増えます。'),
    'history_skipped': ('{count} earlier run(s) skipped: their summary.json is missing, a link, not a regular file, '
                        'too large or not as lifeboat writes it.',
                        '以前の実行 {count} 回を除外しました: summary.json が無い、リンク、通常ファイルでない、'
                        '大きすぎる、または lifeboat の形式でないためです。'),
    'chart_rto': ('RTO', 'RTO'),
    'chart_rpo': ('RPO', 'RPO'),
    'chart_size_drill': ('Backup size', 'バックアップサイズ'),
    'chart_size_restore': ('Database size', 'データベースサイズ'),
    'chart_size_dr': ('Database size', 'データベースサイズ'),
    'chart_size_fleet': ('Backups, total size', 'バックアップ合計サイズ'),
    'chart_duration_drill': ('Restore time', 'リストア時間'),
    'chart_duration_restore': ('Restore time', 'リストア時間'),
    'chart_duration_dr': ('Restore time', 'リストア時間'),
    'chart_duration_integrity': ('Check time', 'チェック時間'),
    'chart_failed_checks': ('Failed checks', '不合格のチェック'),
    'chart_failed_hosts': ('Hosts not ok', '正常でないホスト'),
    'chart_this_run': ('this run', '今回'),
    'chart_target_above': ('target {value}: far above', '目標 {value}: 上方の範囲外'),
    'chart_no_data': ('no value in these runs', 'この期間の値なし'),
    'chart_max': ('max {value}', '最大 {value}'),
    # Units
    'unit_seconds': ('{value} s', '{value} 秒'),
    'unit_minutes': ('{value} min', '{value} 分'),
    'unit_hours': ('{value} h', '{value} 時間'),
    'unit_days': ('{value} d', '{value} 日'),
    'unit_rows': ('{value} rows', '{value} 行'),
    'none': ('-', '-'),
    # The recovery report (seed 003's 復旧レポート)
    'rr_title': ('Recovery report: {run_id}', '復旧レポート: {run_id}'),
    'rr_summary': ('Incident summary', '障害概要'),
    'rr_what': ('What failed', '障害内容'),
    'rr_occurred': ('Occurred', '発生日時'),
    'rr_recovery_started': ('Recovery started', '復旧開始日時'),
    'rr_recovered': ('Recovered', '復旧日時'),
    'rr_recovery_time': ('Recovery time', '復旧時間'),
    'rr_data_loss': ('Data loss', 'データ損失'),
    'rr_result': ('Result', '結果'),
    'rr_steps': ('Recovery steps', '復旧手順'),
    'rr_checks': ('Checks passed', '確認済みの検査'),
    'rr_improvements': ('Improvements', '改善点'),
    'rr_not_recovered': ('not recovered', '未復旧'),
    'rr_data_loss_value': ('the writes made after the backup: at most {value} (RPO)',
                           'バックアップ取得後の書き込み（最大 {value}、RPO）'),
    'rr_with_target': ('{value} ({target}: {verdict})', '{value}（{target}: {verdict}）'),
    'rr_what_drill': ('drill on {database} at {host}: {fault}', '{host} の {database} で訓練: {fault}'),
    'rr_rows_destroyed': (' ({count} rows destroyed)', '（{count} 行を消去）'),
    'rr_what_prove': ('drill: {took_on} lost, its backup of {database} restored on {proved_on}',
                      '訓練: {took_on} を喪失とみなし、{database} のバックアップを {proved_on} に復元'),
    'rr_what_restore': ('database {database} on {host} restored from backup {backup}',
                        '{host} のデータベース {database} をバックアップ {backup} から復元'),
    'rr_what_dr': ('disaster recovery: database {database} rebuilt on {host} from {source}',
                   '災害復旧: {source} から {host} にデータベース {database} を再構築'),
    'rr_step': ('{step} ({value})', '{step}（{value}）'),
    'rr_step_failed': ('{step}: failed - {failure}', '{step}: 失敗 - {failure}'),
    'rr_actions': ('What the restore did:', 'リストアの処理内容:'),
    'rr_check_tables': ('row counts: {ok} of {total} tables as expected', '行数: {total} テーブル中 {ok} 件が期待どおり'),
    'rr_check_verification': ('verification: {text}', '検証: {text}'),
    'rr_check_integrity': ('integrity: {text}', '整合性: {text}'),
    'rr_check_files': ('backup files checked against the manifest: {count}', 'マニフェストと照合したバックアップファイル: {count} 件'),
    'rr_check_folders': ('folder {name} restored from files backup {backup}', 'フォルダー {name} をファイルバックアップ {backup} から復元'),
    'rr_no_checks': ('no check passed', '合格した検査はありません'),
    'imp_failed': ('The run failed at "{step}": {failure}. Fix that and run it again before relying on this backup.',
                   '「{step}」で失敗しました: {failure}。これを直して再実行するまで、このバックアップに頼らないでください。'),
    'imp_rto_missed': ('Recovery took {value}, over the RTO target of {target}: restore with more jobs, keep the '
                       'backup closer to the host, or agree a longer target.',
                       '復旧に {value} かかり、RTO 目標 {target} を超えました: 並列ジョブを増やす、バックアップをホストの近くに置く、'
                       'または目標を見直してください。'),
    'imp_rpo_missed': ('The backup was {value} old when the recovery began, over the RPO target of {target}: back up '
                       'more often (seed 002 takes a delta every 4 hours).',
                       '復旧開始時点でバックアップは {value} 前のもので、RPO 目標 {target} を超えました: '
                       'バックアップの頻度を上げてください（シード 002 では 4 時間ごとに差分を取得）。'),
    'imp_no_target': ('No RTO or RPO target is set, so this run is not judged: set lifeboat_rto_target_seconds and '
                      'lifeboat_rpo_target_seconds, or lifeboat_recovery_level, in the inventory.',
                      'RTO と RPO の目標が未設定のため判定していません: インベントリーで lifeboat_rto_target_seconds と '
                      'lifeboat_rpo_target_seconds、または lifeboat_recovery_level を設定してください。'),
    'imp_slower': ('The restore took {value}, {ratio} times the median of the earlier runs ({median}): look at what grew '
                   'before it reaches the target.',
                   'リストアに {value} かかり、以前の実行の中央値（{median}）の {ratio} 倍です: 目標に達する前に原因を確認してください。'),
    'imp_bigger': ('The backup is {value}, {ratio} times the median of the earlier runs ({median}): check the growth '
                   'against the disk and the restore time.',
                   'バックアップは {value} で、以前の実行の中央値（{median}）の {ratio} 倍です: ディスク容量とリストア時間への影響を確認してください。'),
    'imp_tables': ('{count} table(s) did not come back as expected: {tables}.',
                   '{count} 個のテーブルが期待どおりに復元されませんでした: {tables}。'),
    'imp_physical': ('Physical backups: {problem}. Point-in-time recovery depends on it: fix it first.',
                     '物理バックアップ: {problem}。ポイントインタイムリカバリはこれに依存します。まず修正してください。'),
    'imp_none': ('Nothing to improve from this run: every target met and every check passed.',
                 'この実行からの改善点はありません: すべての目標を達成し、すべての検査に合格しました。'),
}


def text(lang, key, **values):
    """The text `key` in `lang` (en or ja), with `values` put in."""
    template = TEXTS[key][LANGUAGES.index(lang)]
    return template.format(**values) if values else template
