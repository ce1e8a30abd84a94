// One role for one principal on one resource of this resource group. main.bicep calls this module
// once per grant, with the role definition GUID taken from a named variable; table data roles go
// through table-role-assignment.bicep instead, scoped to single tables.
//
// Bicep needs a resource symbol, not a string, for the scope of a role assignment, so the module
// declares the three kinds of resource it can grant on and deploys the assignment that matches
// `targetKind`. Referencing an `existing` resource reads nothing: it only builds its resource ID.

@description('Kind of resource the role is granted on.')
@allowed([
  'storageAccount'
  'openAiAccount'
  'applicationInsights'
])
param targetKind string

@description('Name of that resource, in this resource group.')
param targetName string

@description('GUID of the built-in role definition.')
param roleDefinitionId string

@description('What the grant is for, shown on the assignment in the portal.')
param roleDescription string

@description('Object ID of the principal that gets the role.')
param principalId string

@description('Type of that principal: ServicePrincipal for a managed identity.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: targetName
}

resource openAiAccount 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: targetName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: targetName
}

resource onStorageAccount 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (targetKind == 'storageAccount') {
  name: guid(storageAccount.id, principalId, roleDefinitionId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: principalType
    description: roleDescription
  }
}

resource onOpenAiAccount 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (targetKind == 'openAiAccount') {
  name: guid(openAiAccount.id, principalId, roleDefinitionId)
  scope: openAiAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: principalType
    description: roleDescription
  }
}

resource onApplicationInsights 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (targetKind == 'applicationInsights') {
  name: guid(applicationInsights.id, principalId, roleDefinitionId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: principalType
    description: roleDescription
  }
}
